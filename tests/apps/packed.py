"""Tasks for the compression tests: results compressed as $CELERIAC_TEST_RESULT_COMPRESSION says,
messages signed when $CELERIAC_TEST_SECURITY_KEY is set."""

import os

from celeriac import Celery

app = Celery("packed")
app.conf.result_compression = os.environ.get("CELERIAC_TEST_RESULT_COMPRESSION") or None
app.conf.security_key = os.environ.get("CELERIAC_TEST_SECURITY_KEY") or None


@app.task
def echo(value):
    return value


@app.task
def size(text):
    return len(text)
