from celery import Celery
from kombu import Exchange, Queue

app = Celery("proj", include=["proj.tasks"])
app.conf.task_queues = (
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("videos", Exchange("media"), routing_key="media.video"),
    Queue("images", Exchange("media"), routing_key="media.image"),
)
app.conf.task_default_queue = "default"
app.conf.task_default_exchange_type = "direct"
app.conf.task_default_routing_key = "default"
app.conf.task_routes = {
    "proj.tasks.compress_video": {"exchange": "media", "routing_key": "media.video"},
    "proj.tasks.import_feed": {"queue": "images"},
}
