"""Whether a call's arguments fit a task's function, without ``inspect.Signature.bind`` on the
send path: ``delay()`` checks every call, and ``bind`` is the larger part of that check for the
usual function (plain parameters, no ``*args``, ``**kwargs`` or keyword-only ones). Anything
else, and any call this says does not fit, goes to ``bind``, whose error the caller raises.
"""

from __future__ import annotations

import inspect
from typing import Any


def plain_parameters(
    signature: inspect.Signature, *, bind: bool
) -> tuple[tuple[str, ...], int] | None:
    """The names and the number of required parameters of a function whose parameters are all
    plain (positional or keyword, no ``*args``, ``**kwargs`` or keyword-only), less ``self``
    when bound; None for any other function."""
    parameters = list(signature.parameters.values())
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
        return None
    if bind:
        if not parameters:
            return None
        parameters = parameters[1:]
    required = sum(1 for p in parameters if p.default is inspect.Parameter.empty)
    if any(p.default is inspect.Parameter.empty for p in parameters[required:]):
        return None
    return tuple(p.name for p in parameters), required


def fits(plain: tuple[tuple[str, ...], int], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when ``Signature.bind`` takes these arguments for a function of plain parameters:
    not too many positionally, each keyword names a parameter not given positionally, and every
    required parameter is given. False sends the call to ``bind`` for its error."""
    names, required = plain
    given = len(args)
    if given > len(names):
        return False
    rest = names[given:]
    if kwargs and not all(key in rest for key in kwargs):
        return False
    return given >= required or all(name in kwargs for name in names[given:required])
