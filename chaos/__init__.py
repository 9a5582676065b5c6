"""celeriac's own fault suite: ``python -m chaos`` (``make chaos``).

Each scenario starts real ``celeriac -A chaos.app worker`` (and ``beat``) processes, sends tasks
while it kills, freezes or restarts something, waits for the queues to drain, and ends with a
ledger that sorts every task id the client was told was enqueued into ok, duplicated, lost and
unexpected. What each scenario promises, and why, is in ``docs/design/faults.md``.
"""
