import logging
import os

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    after_task_publish,
    before_task_publish,
    celeryd_init,
    task_failure,
    task_postrun,
    task_prerun,
    task_success,
    task_unknown,
    worker_init,
    worker_process_init,
    worker_ready,
)

app = Celery("proj", include=["proj.tasks"])
OUT = os.environ["PROGRAM_OUT"]


def note(line):
    with open(OUT, "a") as f:
        f.write(line + "\n")


@celeryd_init.connect
def configure_workers(sender=None, conf=None, **kwargs):
    note(f"celeryd_init {conf is not None}")


@worker_init.connect
def on_worker_init(sender=None, **kwargs):
    note("worker_init")


@worker_process_init.connect
def on_process_init(**kwargs):
    note("worker_process_init")


@worker_ready.connect
def on_ready(sender=None, **kwargs):
    note("worker_ready")


@after_setup_logger.connect
def setup_loggers(logger, *args, **kwargs):
    formatter = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    handler = logging.FileHandler(OUT + ".log")
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    note("after_setup_logger")


@after_setup_task_logger.connect
def setup_task_logger(logger, *args, **kwargs):
    note("after_setup_task_logger")


@before_task_publish.connect
def on_publish(sender=None, headers=None, body=None, **kwargs):
    note(f"before_task_publish {sender} {headers['task'] == sender}")


@after_task_publish.connect(sender="proj.tasks.add")
def on_published(sender=None, headers=None, body=None, **kwargs):
    note(f"after_task_publish {sender}")


@task_prerun.connect
def on_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **kw):
    note(f"task_prerun {task.name} {args}")


@task_postrun.connect
def on_postrun(sender=None, task_id=None, task=None, retval=None, state=None, **kw):
    note(f"task_postrun {task.name} {retval} {state}")


@task_success.connect
def on_success(sender=None, result=None, **kwargs):
    note(f"task_success {sender.name} {result}")


@task_failure.connect
def on_failure(sender=None, task_id=None, exception=None, **kwargs):
    note(f"task_failure {sender.name} {type(exception).__name__}")


@task_unknown.connect
def on_unknown(sender=None, name=None, id=None, **kwargs):
    note(f"task_unknown {name}")
