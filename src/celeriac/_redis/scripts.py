"""The Lua scripts of the Redis broker and backend: loading them, and running several as one.

A store ships its scripts as package data, ``redis_lua/<name>.lua`` beside its module, each
with a header that lists every key and argument it touches. A script whose first line is
``-- include: NAME`` gets ``NAME.lua`` from this package first (``lib.lua``: the helpers that
broker and backend scripts share). Comments are stripped; a script is called by its SHA1
(``EVALSHA``), computed once here, and sent with its source only when Redis does not know it:
see ``database.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources

Arg = str | bytes | int | float
Command = tuple[Arg, ...]

_INCLUDE = "-- include:"
_LIBRARY = "celeriac._redis"  # where included files live, whichever store includes them


def _minify(source: str) -> str:
    """The script without its comment lines and indentation (sent with every EVAL)."""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))


class LuaScript:
    """A Lua script shipped as ``redis_lua/<name>.lua`` in a package (see the module docstring)."""

    def __init__(self, package: str, name: str) -> None:
        self.name = name
        text = resources.files(package).joinpath("redis_lua", f"{name}.lua").read_text()
        first = text.partition("\n")[0]
        if first.startswith(_INCLUDE):
            library = first[len(_INCLUDE) :].strip()
            text = resources.files(_LIBRARY).joinpath(f"{library}.lua").read_text() + "\n" + text
        self.source = _minify(text)
        self.sha = sha1(self.source)

    def command(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        """The ``EVALSHA`` command that runs it (Redis answers ``NOSCRIPT`` when its script
        cache lost it: :meth:`RedisDatabase.execute` then sends :meth:`eval_command`)."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def eval_command(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        """The ``EVAL`` command that runs it, with its source: for a transaction, where a
        ``NOSCRIPT`` would fail one command and let the others run."""
        return ("EVAL", self.source, len(keys), *keys, *args)


def sha1(source: str) -> str:
    """The name Redis's script cache gives ``source`` (what ``EVALSHA`` takes)."""
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


# The body of a composed script: run each part on its slice of KEYS and ARGV, in order. Every
# script takes "now" as ARGV[1] ('' = read TIME): the parts share one reading of the clock.
_COMPOSED_MAIN = """
local m = tonumber(ARGV[1])
local ko, ao, replies, now = 0, 1 + 2 * m, {}, nil
for i = 1, m do
local nk, na = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
local keys, args = {}, {}
for j = 1, nk do keys[j] = KEYS[ko + j] end
for j = 1, na do args[j] = ARGV[ao + j] end
if args[1] == '' then
if not now then
local t = redis.call('TIME')
now = string.format('%d.%06d', t[1], t[2])
end
args[1] = now
end
ko, ao = ko + nk, ao + na
replies[i] = PARTS[i](keys, args)
end
return replies"""


def compose(scripts: Sequence[LuaScript]) -> str:
    """One script that runs ``scripts`` in order, each as a function of its own KEYS and ARGV.

    It takes all the parts' keys, one after the other, and the arguments ``m, k1, a1, ... km,
    am`` (how many keys and arguments each part takes) followed by all the parts' arguments;
    it returns the list of the parts' replies. An error in a part stops the parts after it.
    Every script's first argument is "now" ('' = Redis's clock): the parts read ``TIME`` once.
    """
    parts = [f"local function part{i}(KEYS, ARGV)\n{s.source}\nend" for i, s in enumerate(scripts)]
    names = ", ".join(f"part{i}" for i in range(len(scripts)))
    return "\n".join([*parts, f"local PARTS = {{{names}}}", _COMPOSED_MAIN])
