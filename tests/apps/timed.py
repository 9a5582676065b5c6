"""Tasks and a schedule that the beat tests run in real beat and worker subprocesses.

The broker comes from $CELERIAC_BROKER_URL. Every run appends one line to the file named by
$CELERIAC_TEST_BEAT_LOG: "<entry> <due> <ran at> <pid> <node>" (O_APPEND writes this small are
atomic, so the count is exact across processes). $CELERIAC_TEST_BEAT_ENTRIES picks the entries
(comma-separated, default "tick"); $CELERIAC_TEST_DIRECT_NODE names the worker whose own queue
the "direct" entry sends to.
"""

import os
import time

from celeriac import Celery

app = Celery("timed")
app.conf.broker_transport_options = {"lease_seconds": 5}
app.conf.beat_max_loop_interval = 0.5  # run-time changes show within half a second
app.conf.worker_direct = True

LOG = os.environ.get("CELERIAC_TEST_BEAT_LOG", os.devnull)
ENTRIES = set(filter(None, os.environ.get("CELERIAC_TEST_BEAT_ENTRIES", "tick").split(",")))
DIRECT_NODE = os.environ.get("CELERIAC_TEST_DIRECT_NODE", "nobody")


@app.task(bind=True)
def tick(self, label=None):
    """Log which fire this is (from beat's headers) and who ran it."""
    headers = self.request.headers
    entry, due = label or headers.get("beat_entry"), headers.get("beat_due")
    line = f"{entry} {due} {time.time():.3f} {os.getpid()} {self.request.hostname}\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


_schedule = {
    "tick": {"task": "timed.tick", "schedule": 1.0, "options": {"expires": 30}},
    "direct": {"task": "timed.tick", "schedule": 1.0, "options": {"queue": f"{DIRECT_NODE}.dq"}},
}
app.conf.beat_schedule = {name: spec for name, spec in _schedule.items() if name in ENTRIES}


@app.on_after_configure.connect
def add_pulse(sender, **kwargs):
    if "pulse" in ENTRIES:
        sender.add_periodic_task(1.0, tick.s("pulse"), name="pulse")
