"""A dashboard's indexing, alone: what watching the history costs a busy worker.

Run by ``benchmarks.history_cost`` beside the worker of its "watched" runs:
``python -m benchmarks.history_watch URL`` keeps the history of the app on ``URL`` indexed
(``dashboard/indexing.py``, as a running dashboard does) until it is stopped (SIGTERM), then
prints how many events it indexed and its CPU seconds.
"""

from __future__ import annotations

import resource
import signal
import sys
import threading

from celeriac import Celeriac
from celeriac.dashboard.indexing import BackgroundIndexer


def main() -> None:
    app = Celeriac("history_watch", broker=sys.argv[1])
    indexer = BackgroundIndexer(app.backend)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    indexer.start()
    print("watching", flush=True)
    stopped.wait()
    indexer.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"indexer CPU {usage.ru_utime + usage.ru_stime:.2f}s", flush=True)
    app.close()


if __name__ == "__main__":
    main()
