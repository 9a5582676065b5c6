"""``HistoryProcess``: the worker's task events, written by a process of their own.

A running worker's main process is the one that every task goes through (fetch, hand-off,
results, acks), and it is bound by its CPU under one GIL. Writing the task history from a
thread of that process (``HistoryWriter``) still cost it the fold, the backend's arguments and
the replies, and, worse, made its turn wait for the GIL behind that thread. So a running worker
(``Worker.run``, with ``task_history`` on) forks one more process, ``celeriac-events``, and only
sends it its events, as rows (``middleware/events.py``: a microsecond or so each, undecoded):
the main process serializes a turn's rows in one ``orjson.dumps`` and writes them, a frame a
``send``, on a ``SOCK_SEQPACKET`` socket pair (one message a frame, never half a frame). The
events process hands the frames, as they are, to a ``HistoryWriter``, which appends them to
the backend's event log every 0.5 s with its own backend connection (failed writes tried
again); the history is indexed from the log by whoever reads it.

The main process never waits for it: the socket is non-blocking, and what it cannot take now
stays queued in the main process (at most ``MAX_PENDING`` events; the oldest are dropped, with a
warning: events are for watching, never for correctness). An events process that died is
replaced by a thread of the main process (``HistoryWriter``, as before), not forked again: a
process forked while the pool runs would hold the pool's pipes. On a clean stop the main
process sends what is left and an empty frame; the events process writes everything and exits.
It ignores SIGINT and SIGTERM (the main process decides when to stop) and dies with the main
process (``PR_SET_PDEATHSIG``): a worker killed with SIGKILL loses its last second's events, as
before. ``Worker.drain()`` (tests, burst mode) keeps the in-process writer. See
docs/design/monitoring.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess

from celeriac.event_rows import FRAME_BYTES, EventRow, frames
from celeriac.worker.child import die_with_parent
from celeriac.worker.history_writer import HistoryWriter, Write

log = logging.getLogger("celeriac.worker")
PROCESS_NAME = "celeriac-events"  # its name in ps and /proc/<pid>/comm (15 bytes at most)
SEND_INTERVAL = 0.05  # seconds events may wait in the main process before they are sent
SEND_EVENTS = 300  # or: this many events waiting are sent at once
START_TIMEOUT = 10.0  # seconds the events process has to say it is ready
READY = b"ready"  # what it says, once named and with its writer thread started
STOP_TIMEOUT = 15.0  # seconds a stopping worker waits for its events to be written
_PR_SET_NAME = 15
MAX_PENDING = 100_000  # events kept in the main process while the events process is behind


def _name_process(name: str) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the name is only for ps
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def serve(sock: socket.socket, write: Write, name: str, parent_pid: int) -> None:
    """The events process: read frames from ``sock`` and hand them to a ``HistoryWriter``,
    until the main process sends the end; then append everything."""
    die_with_parent()
    if os.getppid() != parent_pid:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _name_process(PROCESS_NAME)
    writer = HistoryWriter(write, name)
    writer.start()
    sock.send(READY)
    try:
        while frame := sock.recv(FRAME_BYTES + 1024):
            writer.submit_frames([frame])
    finally:
        writer.stop(timeout=STOP_TIMEOUT)
        sock.close()


class HistoryProcess:
    """The main process's side of the events process; see the module docstring. It offers what
    ``HistoryWriter`` does (``submit_rows``, ``flush``, ``start``, ``stop``, ``pending``)."""

    def __init__(self, write: Write, name: str) -> None:
        self._write = write
        self.name = name
        self._outbox: list[EventRow] = []
        self._sock: socket.socket | None = None
        self._process: BaseProcess | None = None
        self._fallback: HistoryWriter | None = None  # the events process died: a thread
        self._last_send = time.monotonic()

    @property
    def pending(self) -> int:
        """How many events wait in the main process to be sent."""
        return len(self._outbox) + (self._fallback.pending if self._fallback else 0)

    @property
    def pid(self) -> int | None:
        """The events process's id, while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Fork the events process. Call it before the pool starts its children, so that it
        holds none of their pipes."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        context = multiprocessing.get_context("fork")
        process = context.Process(
            target=serve,
            args=(child, self._write, self.name, os.getpid()),
            name=PROCESS_NAME,
        )
        process.start()
        child.close()
        self._sock, self._process = parent, process
        parent.settimeout(START_TIMEOUT)
        try:
            ready = parent.recv(len(READY)) == READY
        except OSError:
            ready = False
        parent.setblocking(False)
        if not ready:
            self._fall_back()

    def submit_rows(self, rows: list[EventRow]) -> None:
        """Queue ``rows``; send what waits once there is enough, or it waited long enough."""
        if self._fallback is not None:
            self._fallback.submit_rows(rows)
            return
        self._outbox += rows
        if self._outbox and (
            len(self._outbox) >= SEND_EVENTS or time.monotonic() - self._last_send >= SEND_INTERVAL
        ):
            self._send()

    def flush(self) -> None:
        """Send everything queued now (what the socket cannot take stays queued)."""
        if self._fallback is not None:
            self._fallback.flush()
        else:
            self._send()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Send what is left, waiting for room, then the end (an empty frame: the pool's
        children hold copies of this socket, so closing it is not an end the events process
        would see); it writes everything and exits."""
        deadline = time.monotonic() + timeout
        while self._outbox and self._fallback is None and time.monotonic() < deadline:
            self._send()
            if self._outbox:
                time.sleep(0.01)
        sock, process = self._sock, self._process
        self._sock = self._process = None
        if self._fallback is not None:
            self._fallback.stop()
        elif self._outbox:
            log.warning("%d task events not recorded: the worker is stopping", len(self._outbox))
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setblocking(True)
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock.send(b"")
            sock.close()
        if process is not None:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("the events process did not finish in time: stopping it")
                process.kill()
                process.join(1.0)

    def _send(self) -> None:
        self._last_send = time.monotonic()
        if self._process is None or not self._process.is_alive():
            self._fall_back()
            return
        assert self._sock is not None
        sent = 0
        for frame, count in frames(self._outbox):
            if not frame:  # an event too large to send, left out
                sent += count
                continue
            try:
                self._sock.send(frame)
            except BlockingIOError:  # the events process is behind: keep the rest queued
                break
            except OSError:  # it died just now: the next send falls back
                break
            sent += count
        # a frame holds consecutive events, in order: the first ``sent`` went out
        del self._outbox[:sent]
        if len(self._outbox) > MAX_PENDING:
            dropped = len(self._outbox) - MAX_PENDING
            log.warning("dropping %d task events: the events process is behind", dropped)
            del self._outbox[:dropped]

    def _fall_back(self) -> None:
        """The events process is gone (killed?) or never got ready: write from a thread of
        this process from now on, rather than fork again (a process forked now would hold the
        pool's pipes)."""
        process = self._process
        log.warning(
            "the events process %s: task events are written by a thread from now on",
            "is not ready" if process and process.is_alive() else "exited",
        )
        if process is not None and process.is_alive():
            process.kill()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._process = None
        self._fallback = HistoryWriter(self._write, self.name)
        self._fallback.start()
        self._fallback.submit_rows(self._outbox)
        self._outbox = []


__all__ = ["PROCESS_NAME", "HistoryProcess", "serve"]
