"""A self-pipe that wakes the main loop from another thread or a signal handler."""

from __future__ import annotations

import contextlib
import os


class WakePipe:
    """A pipe opened on first use (a worker that is only drained never needs one)."""

    def __init__(self) -> None:
        self._fds: tuple[int, int] | None = None

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
        with contextlib.suppress(OSError):
            os.write(self._open()[1], b"x")

    def clear(self) -> None:
        """Consume pending wake-ups."""
        if self._fds is not None:
            with contextlib.suppress(OSError):
                os.read(self._fds[0], 4096)

    def close(self) -> None:
        """Close both ends (a later use opens a new pipe)."""
        if self._fds is not None:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = None
