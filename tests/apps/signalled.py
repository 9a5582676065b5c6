"""Receivers of the worker's and the command line's signals that write "<signal> <detail>" lines
to $CELERIAC_TEST_HOOK_LOG. With $CELERIAC_TEST_OWN_LOGGING set, a setup_logging receiver
takes over logging (so the command configures none, and sends no after_setup_* signals)."""

import logging
import os

from hooklog import note

from celeriac import Celery, signals

LOG = os.environ.get("CELERIAC_TEST_HOOK_LOG", "")
app = Celery("signalled")


@signals.task_received.connect
def on_received(sender=None, request=None, **kwargs):
    note(LOG, f"task_received:{request.task}", request.id)


@signals.task_unknown.connect
def on_unknown(sender=None, message=None, exc=None, name=None, id=None, **kwargs):
    note(LOG, f"task_unknown:{name}:{type(exc).__name__}", id)


@signals.task_rejected.connect
def on_rejected(sender=None, message=None, exc=None, **kwargs):
    note(LOG, f"task_rejected:{type(exc).__name__}")


@signals.task_success.connect(sender="signalled.add")
def on_add_success(sender=None, result=None, **kwargs):
    note(LOG, f"task_success:{sender.name}:{result}")


@signals.after_setup_logger.connect
def on_logger(sender=None, logger=None, loglevel=None, format=None, **kwargs):
    note(LOG, f"after_setup_logger:{logger.name or 'root'}:{logging.getLevelName(loglevel)}")


@signals.after_setup_task_logger.connect
def on_task_logger(sender=None, logger=None, loglevel=None, **kwargs):
    note(LOG, f"after_setup_task_logger:{logger.name}:{logging.getLevelName(loglevel)}")


if os.environ.get("CELERIAC_TEST_OWN_LOGGING"):

    @signals.setup_logging.connect
    def on_setup_logging(
        sender=None, loglevel=None, logfile=None, format=None, colorize=None, **kwargs
    ):
        logging.basicConfig(level=loglevel, format="OWN %(message)s")
        note(LOG, f"setup_logging:{logging.getLevelName(loglevel)}:{logfile}:{colorize}")


@app.task
def add(x, y):
    return x + y


@app.task
def other():
    return "other"
