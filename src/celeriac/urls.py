"""Broker and backend URLs: masking the secrets in them before they reach a log or a page."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
