"""The worker: a main process that supervises a pool of task runners (see worker.py)."""

from celeriac.worker.held import Held, Stage
from celeriac.worker.options import POOLS, WorkerOptions, format_hostname
from celeriac.worker.worker import Worker, run_worker

__all__ = ["POOLS", "Held", "Stage", "Worker", "WorkerOptions", "format_hostname", "run_worker"]
