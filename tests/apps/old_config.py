"""An app configured as Celery 3 projects were: a config object of old upper-case names only.

The broker comes from $CELERIAC_TEST_OLD_BROKER_URL through ``BROKER_URL``, so a test can tell
that the old name was read: the worker's environment names another broker in
$CELERIAC_BROKER_URL, which a setting beats. Some names are moot in celeriac and some not
supported yet, so the worker has notes to log.
"""

import os

from celeriac import Celery


class OldConfig:
    BROKER_URL = os.environ["CELERIAC_TEST_OLD_BROKER_URL"]
    CELERYD_CONCURRENCY = 2
    CELERY_TASK_RESULT_EXPIRES = 600
    CELERY_ACKS_LATE = True
    CELERY_TIMEZONE = "Europe/Paris"
    CELERY_REJECT_ON_WORKER_LOST = True  # moot: leases
    CELERY_SEND_EVENTS = True  # what celeriac does anyway: no note
    CELERYD_HIJACK_ROOT_LOGGER = False  # not yet
    BROKER_CONNECTION_RETRY_ON_STARTUP = True  # Celery's behaviour is celeriac's: no note


app = Celery("old_config")
app.config_from_object(OldConfig)


@app.task
def add(x, y):
    return x + y


@app.task(bind=True)
def settings_seen(self):
    conf = self.app.conf
    return [conf.timezone, conf.worker_concurrency, conf.result_expires, conf.CELERY_SEND_EVENTS]
