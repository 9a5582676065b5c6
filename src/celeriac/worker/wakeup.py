"""A self-pipe that wakes the main loop from another thread or a signal handler."""

from __future__ import annotations

import contextlib
import os


class WakePipe:
    """A pipe, opened by :meth:`open` (or the first :meth:`fileno`) in the thread that waits on
    it, before any other thread or signal handler may wake it: two threads opening it at once
    would make two pipes, one watched and one woken. A worker that is only drained never opens
    one."""

    def __init__(self) -> None:
        self._fds: tuple[int, int] | None = None

    def open(self) -> None:
        """Open the pipe, before any other thread or signal handler may wake it."""
        self._open()

    def _open(self) -> tuple[int, int]:
        if self._fds is None:
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
            self._fds = read_fd, write_fd
        return self._fds

    def fileno(self) -> int:
        """The end to wait on."""
        return self._open()[0]

    def wake(self) -> None:
        """Make the read end readable (safe in a signal handler; never blocks)."""
        fds = self._fds  # never opens: two threads opening at once would make two pipes
        if fds is not None:
            with contextlib.suppress(OSError):
                os.write(fds[1], b"x")

    def clear(self) -> None:
        """Consume pending wake-ups."""
        if self._fds is not None:
            with contextlib.suppress(OSError):
                os.read(self._fds[0], 4096)

    def close(self) -> None:
        """Close both ends (a later :meth:`open` opens a new pipe; :meth:`wake` does nothing
        until then)."""
        if self._fds is not None:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = None
