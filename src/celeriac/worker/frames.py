"""Length-prefixed frames on a pipe: how a prefork child sends its outcomes back.

The main process reads every complete frame waiting on a child's pipe in one go, without
blocking and without building a selector per read (what ``Connection.poll`` does, and what cost
the main process more than a no-op task's whole outcome). A frame is a 4-byte big-endian length
and that many bytes; a frame cut short by a child that died mid-write is never handed out.
"""

from __future__ import annotations

import contextlib
import os
import struct

HEADER = struct.Struct("!I")
CHUNK = 64 * 1024  # bytes read at a time


def write_frame(fd: int, data: bytes) -> None:
    """Write one frame to ``fd`` (blocking until all of it is written).

    Raises:
        OSError: the pipe is broken (the reader is gone).
    """
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


class FrameReader:
    """Reads the frames written to the pipe ``fd`` (set non-blocking here)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._buffer = bytearray()

    def read(self) -> list[bytes]:
        """Every complete frame waiting now, oldest first (none when the pipe is empty,
        closed, or holds only part of a frame)."""
        while True:
            try:
                chunk = os.read(self.fd, CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # closed: the child's death is seen through its sentinel
                break
            self._buffer += chunk
            if len(chunk) < CHUNK:
                break
        return self._frames()

    def _frames(self) -> list[bytes]:
        frames, buffer, start = [], self._buffer, 0
        while len(buffer) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, start)
            end = start + HEADER.size + size
            if end > len(buffer):
                break
            frames.append(bytes(buffer[start + HEADER.size : end]))
            start = end
        if start:
            del buffer[:start]
        return frames

    def close(self) -> None:
        """Close the pipe's end."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
