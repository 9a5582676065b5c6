"""The worker: a main process that supervises a pool of task runners."""
