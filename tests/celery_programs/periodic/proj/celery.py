from celery import Celery
from celery.schedules import crontab, solar

app = Celery("proj", include=["proj.tasks"])
app.conf.timezone = "Europe/London"
app.conf.beat_schedule = {
    "add-every-second": {
        "task": "proj.tasks.add",
        "schedule": 1.0,
        "args": (16, 16),
    },
}


@app.on_after_finalize.connect
def setup_periodic_tasks(sender, **kwargs):
    from proj.tasks import test

    # Calls test('hello') every second.
    sender.add_periodic_task(1.0, test.s("hello"), name="add every 1")
    # Executes every Monday morning at 7:30 a.m.
    sender.add_periodic_task(
        crontab(hour=7, minute=30, day_of_week=1),
        test.s("Happy Mondays!"),
    )
    # Executes at sunset in Melbourne.
    sender.add_periodic_task(solar("sunset", -37.81753, 144.96715), test.s("sunset"))
