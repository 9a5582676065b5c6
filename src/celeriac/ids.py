"""Task ids made in bulk, and the garbage collector paused while many messages are built.

Both are what sending many messages at once costs that has nothing to do with messages: an id
is ``str(uuid.uuid4())``'s format made from one read of the OS's random source (a tenth of
``uuid4()``'s cost when many are made at once), and a build of thousands of messages keeps
every object it makes until they are sent, which the cyclic collector would otherwise walk
again and again. ``sending.py`` and the group fast path (``canvas/flat.py``) use them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

PAUSE_COLLECTOR = 1000  # calls built at once from which the garbage collector waits


def new_ids(count: int) -> list[str]:
    """``count`` random ids written as ``str(uuid.uuid4())`` writes them (version 4, RFC 4122
    variant: 122 random bits), from one read of the OS's random source; many at once are laid
    out column by column (a slice assignment a hex digit), a tenth of ``uuid4()``'s cost."""
    if count < BULK_IDS:
        return [new_id() for _ in range(count)]
    digits = os.urandom(16 * count).hex().encode("ascii")
    out = bytearray(b"-" * (37 * count))
    for digit, at in enumerate(_ID_DIGITS):  # digit of each id -> its place in "8-4-4-4-12\n"
        out[at::37] = digits[digit::32]
    out[14::37] = b"4" * count  # the version
    out[19::37] = out[19::37].translate(_VARIANT_BYTES)  # the variant, from that digit's bits
    out[36::37] = b"\n" * count
    return out[:-1].decode("ascii").split("\n")


def new_id() -> str:
    """One id, from this thread's stock of ids made in bulk (a fork starts a new stock)."""
    stock: list[str] | None = getattr(_stock, "ids", None)
    if not stock:
        stock = _stock.ids = new_ids(ID_STOCK)
    return stock.pop()


def _new_stock() -> None:
    global _stock
    _stock = threading.local()


BULK_IDS = 8  # ids from which new_ids lays them out in bulk
ID_STOCK = 256  # ids made at once for one-by-one calls (delay())
_ID_DIGITS = tuple(at for at in range(36) if at not in (8, 13, 18, 23))
_VARIANT_BYTES = bytes.maketrans(b"0123456789abcdef", b"89ab" * 4)  # uuid4's variant: 10xx
_stock = threading.local()
os.register_at_fork(after_in_child=_new_stock)  # never the parent's ids in a child


@contextlib.contextmanager
def collector_paused(count: int) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the messages of ``count`` calls are built,
    when they are many (``PAUSE_COLLECTOR``), and restore it as it was.

    A group's build makes a few objects a member, every one of them kept until the group is
    sent: the collector can free none of them, yet it ran its full passes over every object of
    the process several times during a build of 20,000 members, a third or more of the build's
    CPU. Paused, it looks at what is left of the build once, afterwards.
    """
    if count < PAUSE_COLLECTOR or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
