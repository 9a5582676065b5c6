"""Celery's routing guide, literally: task_queues of Queue and Exchange objects, routes by
exchange and routing key, and by queue name."""

from celeriac import Celery
from celeriac.queues import Exchange, Queue  # also `from celeriac import ...` once exported

app = Celery("routed")
app.conf.task_default_queue = "default"
app.conf.task_queues = (
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("videos", Exchange("media"), routing_key="media.video"),
    Queue(
        "images",
        Exchange("media"),
        routing_key="media.image",
        queue_arguments={"x-max-priority": 10},
    ),
)
app.conf.task_routes = {
    "routed.encode": {"exchange": "media", "routing_key": "media.video"},
    "routed.thumbnail": {"queue": "images"},
}


@app.task
def encode(name):
    return f"encoded {name}"


@app.task
def thumbnail(name):
    return f"thumbnail of {name}"


@app.task
def plain():
    return "default"
