"""Compressing message bodies and results with the standard library, as Celery's ``compression``.

``compression='zlib'`` (or ``'gzip'``, ``'bzip2'``, ``'lzma'``) on ``apply_async``, or the
``task_compression`` setting, compresses a message's body; the header says how
(``compression``), and the worker reads it before it decodes anything. ``result_compression``
does the same for stored results, marked in the record's content type
(``application/json;compression=zlib``).

Decompressing is bounded: a few kilobytes may expand to gigabytes (a compression bomb), so
:func:`decompress` stops at ``max_bytes`` of output and refuses the rest as a malformed
message, without ever holding more than that in memory.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from typing import Protocol

from celeriac.exceptions import ConfigurationError, MalformedMessage

# Celery's names (kombu's aliases included) -> the name used on the wire.
NAMES = {
    "zlib": "zlib",
    "gzip": "gzip",
    "bzip2": "bzip2",
    "bzip": "bzip2",
    "bz2": "bzip2",
    "lzma": "lzma",
    "xz": "lzma",
}
WIRE_NAMES = frozenset(NAMES.values())
PARAMETER = ";compression="  # how a compressed result marks its content type
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # message_max_bytes' default, for callers without one
_CHUNK = 64 * 1024


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "zlib": zlib.compress,
    # mtime=0: the same body always compresses to the same bytes
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bzip2": bz2.compress,
    "lzma": lzma.compress,
}


def _decompressor(name: str) -> _Decompressor:
    if name == "zlib":
        return _Zlib(zlib.decompressobj())
    if name == "gzip":
        return _Zlib(zlib.decompressobj(wbits=31))
    if name == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


class _Zlib:
    """zlib's decompressor behind the interface bz2's and lzma's share (``max_length``)."""

    def __init__(self, inner: zlib._Decompress) -> None:
        self._inner = inner
        self._tail = b""

    @property
    def eof(self) -> bool:
        return self._inner.eof

    def decompress(self, data: bytes, max_length: int = -1, /) -> bytes:
        out = self._inner.decompress(self._tail + data, max(max_length, 0))
        self._tail = self._inner.unconsumed_tail
        return out


def compression_name(name: str | None) -> str | None:
    """The wire name for a Celery compression name (None stays None).

    Raises:
        ConfigurationError: an unknown name, naming the known ones.
    """
    if name is None:
        return None
    wire = NAMES.get(str(name).lower()) if isinstance(name, str) else None
    if wire is None:
        raise ConfigurationError(
            f"unknown compression {name!r}: choose from {', '.join(sorted(WIRE_NAMES))}"
        )
    return wire


def compress(data: bytes, name: str) -> bytes:
    """``data`` compressed with ``name`` (a wire name, see :func:`compression_name`).

    Raises:
        ConfigurationError: an unknown name.
    """
    wire = compression_name(name)
    assert wire is not None
    return _COMPRESS[wire](data)


def decompress(data: bytes, name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """``data`` decompressed, refusing more than ``max_bytes`` of output.

    Raises:
        MalformedMessage: an unknown compression, data that does not decompress, or output
            over ``max_bytes`` (nothing past the limit is produced).
    """
    wire = NAMES.get(name)
    if wire is None:
        raise MalformedMessage(f"unknown compression {name!r}")
    decompressor = _decompressor(wire)
    parts: list[bytes] = []
    size = 0
    pending = data
    try:
        while not decompressor.eof:
            chunk = decompressor.decompress(pending, min(_CHUNK, max_bytes - size + 1))
            pending = b""
            size += len(chunk)
            if size > max_bytes:
                raise MalformedMessage(
                    f"{wire} body decompresses to more than message_max_bytes ({max_bytes})"
                )
            parts.append(chunk)
            if not chunk and not _has_more(decompressor):
                break
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise MalformedMessage(f"body does not decompress as {wire}: {exc}") from exc
    if not decompressor.eof:
        raise MalformedMessage(f"body does not decompress as {wire}: it is truncated")
    return b"".join(parts)


def _has_more(decompressor: _Decompressor) -> bool:
    """Whether a decompressor that produced nothing may still produce output from what it
    holds (asked again with no new input)."""
    needs_input = getattr(decompressor, "needs_input", None)
    if needs_input is not None:  # bz2, lzma
        return not needs_input
    return bool(getattr(decompressor, "_tail", b""))


def result_content_type(content_type: str, name: str | None) -> str:
    """The content type a result compressed with ``name`` is stored under."""
    return content_type if name is None else f"{content_type}{PARAMETER}{name}"


def split_content_type(content_type: str) -> tuple[str, str | None]:
    """The serializer's content type and the compression of a stored result's type."""
    base, sep, name = content_type.partition(PARAMETER)
    return (base, name) if sep else (content_type, None)
