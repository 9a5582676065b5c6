"""The dashboard's gate: credentials on every request, CSRF and same-origin on every write.

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``), so the live event stream
passes through it unbuffered.

- **Credentials** (when the options give any): ``Authorization: Basic`` with ``--basic-auth``,
  ``Authorization: Bearer`` with ``--token``; a browser may bring the token once as
  ``?token=``, which is then kept in an HttpOnly cookie. Anything else gets 401.
- **CSRF**: every response to a request without the ``celeriac_csrf`` cookie sets one (random,
  HttpOnly, SameSite=Strict); pages carry its value in ``<meta name="csrf-token">``, and
  ``GET /api/csrf`` returns it to scripts. A write (POST, PUT, PATCH, DELETE) must send it back
  in the ``X-CSRF-Token`` header: a cross-site page can neither read the cookie nor the page.
- **Host**: without credentials, a request whose ``Host`` is neither a loopback name nor the
  listening address gets 403, which stops DNS rebinding.
- **Same origin**: a write whose ``Origin`` (else ``Referer``) is another site's, or whose
  ``Sec-Fetch-Site`` says cross-site, gets 403 whatever it carries. Browsers send ``Origin``
  on every cross-origin POST, so a request with neither header is a script's, not a page's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celeriac.dashboard.options import DashboardOptions, is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSRF_COOKIE = "celeriac_csrf"
CSRF_HEADER = "x-csrf-token"
TOKEN_COOKIE = "celeriac_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Gate:
    """Wraps the dashboard's ASGI app; see the module docstring."""

    def __init__(self, app: ASGIApp, options: DashboardOptions) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not self.options.has_credentials and not self._known_host(headers.get("host", "")):
            await _refuse(send, 403, "unexpected Host header (open the dashboard by its address)")
            return
        cookies = _cookies(headers.get("cookie", ""))
        authenticated, remember_token = self._authenticate(scope, headers, cookies)
        if not authenticated:
            await _refuse(send, 401, "authentication required", self._challenge())
            return
        if scope["method"] not in SAFE_METHODS:
            problem = _write_problem(scope, headers, cookies)
            if problem:
                await _refuse(send, 403, problem)
                return
        csrf = cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf"] = csrf
        extra = []
        if CSRF_COOKIE not in cookies:
            extra.append(_cookie(CSRF_COOKIE, csrf))
        if remember_token and self.options.token:
            extra.append(_cookie(TOKEN_COOKIE, self.options.token))

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    def _authenticate(
        self, scope: Scope, headers: dict[str, str], cookies: dict[str, str]
    ) -> tuple[bool, bool]:
        """(let in, keep the token in a cookie)."""
        options = self.options
        if not options.has_credentials:
            return True, False
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if (
            options.basic_auth
            and scheme.lower() == "basic"
            and _same(_basic(value), options.basic_auth)
        ):
            return True, False
        if options.token:
            if scheme.lower() == "bearer" and _same(value.strip(), options.token):
                return True, False
            if _same(cookies.get(TOKEN_COOKIE, ""), options.token):
                return True, False
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if _same((query.get("token") or [""])[0], options.token):
                return True, True
        return False, False

    def _known_host(self, host: str) -> bool:
        """Without credentials, only a loopback name or the listening address may be the Host:
        a page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding)
        would otherwise be the dashboard's own origin, and read its CSRF token."""
        name = urlsplit(f"//{host}").hostname or ""
        return name == self.options.address.strip("[]") or is_loopback(name)

    def _challenge(self) -> list[tuple[bytes, bytes]]:
        if self.options.basic_auth:
            return [(b"www-authenticate", b'Basic realm="celeriac dashboard"')]
        return [(b"www-authenticate", b'Bearer realm="celeriac dashboard"')]


def _write_problem(scope: Scope, headers: dict[str, str], cookies: dict[str, str]) -> str:
    """Why a state-changing request is refused ('' when it is not)."""
    if headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
        return "cross-site request refused"
    own = _own_origin(scope, headers)
    origin = headers.get("origin")
    if origin is not None:
        if origin != own:
            return "cross-origin request refused"
    elif "referer" in headers and _origin_of(headers["referer"]) != own:
        return "cross-origin request refused"
    expected = cookies.get(CSRF_COOKIE, "")
    if not expected or not _same(headers.get(CSRF_HEADER, ""), expected):
        return "missing or wrong CSRF token (send the X-CSRF-Token header; GET /api/csrf)"
    return ""


def _own_origin(scope: Scope, headers: dict[str, str]) -> str:
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _basic(value: str) -> str:
    try:
        return base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is the client's problem: no cookies
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _cookie(name: str, value: str) -> tuple[bytes, bytes]:
    return b"set-cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Strict".encode()


async def _refuse(
    send: Send, status: int, reason: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
