"""Broker and backend URLs: masking the secrets in them before they reach a log or a page, and
picking the store that a URL's scheme names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from celeriac.exceptions import ConfigurationError

T = TypeVar("T")

SENTINEL_SCHEMES = ("redis+sentinel", "sentinel")
# Every scheme that names a Redis server: here, so that choosing a store imports no redis.
REDIS_SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (unchanged when it has none)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    if not password:
        return url
    user = parts.username or ""
    # The hosts are kept as written: parsing them (``parts.port``) fails on a multi-host URL.
    hosts = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:***@{hosts}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scheme_of(url: str) -> str:
    """The scheme of ``url`` in lower case (``''`` when it has none)."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


def build_from_url(url: str, what: str, builders: Mapping[str, Callable[[str], T]]) -> T:
    """Build the ``what`` (``"broker"``, ``"result backend"``) that ``url`` names, with the
    builder that its scheme picks from ``builders``.

    A builder raises ``ValueError`` for a URL it finds malformed.

    Raises:
        ConfigurationError: no builder takes the scheme (the message names the URL, password
            masked, and every known scheme), or the builder found the URL malformed.
    """
    build = builders.get(scheme_of(url))
    if build is None:
        known = ", ".join(f"{scheme}://" for scheme in builders)
        raise ConfigurationError(
            f"unknown {what} URL {mask_url(url)!r}: the scheme must be one of {known}"
        )
    try:
        return build(url)
    except ValueError as exc:
        raise ConfigurationError(f"bad {what} URL: {exc}") from None
