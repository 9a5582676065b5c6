from celery.utils.log import get_task_logger

from .celery import app

logger = get_task_logger(__name__)


@app.task
def add(x, y):
    logger.info("Adding %s + %s", x, y)
    return x + y


@app.task
def fail():
    raise KeyError("nope")
