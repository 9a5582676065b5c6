"""Masking the secrets in broker and backend URLs."""

from __future__ import annotations

import pytest

from celeriac.urls import mask_url, scheme_of


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("redis://user:s3cret@localhost:6379/0", "redis://user:***@localhost:6379/0"),
        ("amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
        ("redis://user:s3cret@cache.example.com/2", "redis://user:***@cache.example.com/2"),
        (
            "rediss://u:p%40ss@host:6380/0?ssl_cert_reqs=none",
            "rediss://u:***@host:6380/0?ssl_cert_reqs=none",
        ),
        ("redis://u:p@ss@host:6379/0", "redis://u:***@host:6379/0"),
        ("redis://u:pa:ss@host/0", "redis://u:***@host/0"),
        ("redis://user:s3cret@[::1]:6379/0", "redis://user:***@[::1]:6379/0"),
        ("redis://:s3cret@[2001:db8::1]/0", "redis://:***@[2001:db8::1]/0"),
        ("redis://u:s3cret@Cache.Example.COM:6379", "redis://u:***@Cache.Example.COM:6379"),
        (
            "redis+sentinel://:s3cret@h1:26379;h2:26379/0",
            "redis+sentinel://:***@h1:26379;h2:26379/0",
        ),
        ("redis://u:s3cret@host:99999/0", "redis://u:***@host:99999/0"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "s3cret" not in mask_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://user@localhost:6379/0",
        "redis://user:@localhost/0",
        "memory://",
        "memory://tests",
        "sqlite:///relative/path.db",
        "sqlite:////abs/path.db",
        "amqp://rabbit//",
        "redis://[::1]:6379/0",
        "",
        "not a url",
    ],
)
def test_mask_url_leaves_a_url_without_password_unchanged(url: str) -> None:
    assert mask_url(url) == url


def test_mask_url_does_not_echo_an_unparseable_url() -> None:
    assert mask_url("redis://u:s3cret@[::1/0") == "<unparseable URL>"


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("redis://localhost", "redis"),
        ("SQLite:///x.db", "sqlite"),
        ("redis+sentinel://h", "redis+sentinel"),
        ("localhost:6379", ""),
        ("", ""),
    ],
)
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme
