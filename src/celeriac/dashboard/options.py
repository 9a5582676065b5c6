"""How the dashboard is served: address, port and credentials, checked before it starts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from celeriac.exceptions import ConfigurationError

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5555  # Flower's


@dataclass(frozen=True)
class DashboardOptions:
    """Where the dashboard listens and what a request must show to be let in.

    ``basic_auth`` is ``'user:password'``; ``token`` a secret that a client sends as
    ``Authorization: Bearer <token>`` (or once as ``?token=`` from a browser, which then keeps
    it in a cookie). With neither, every request is let in, which only a loopback address allows.
    """

    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    basic_auth: str | None = None
    token: str | None = None

    @property
    def has_credentials(self) -> bool:
        """True when requests must authenticate."""
        return bool(self.basic_auth or self.token)

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/"

    def check(self) -> None:
        """Refuse what must not start: a public address without credentials, a bad
        ``basic_auth``.

        Raises:
            ConfigurationError: one line that says why and what to do.
        """
        if self.basic_auth is not None and ":" not in self.basic_auth:
            raise ConfigurationError("--basic-auth takes user:password")
        if not is_loopback(self.address) and not self.has_credentials:
            raise ConfigurationError(
                f"refusing to serve the dashboard on {self.address} without credentials: "
                "give --basic-auth user:password or --token SECRET, or listen on 127.0.0.1"
            )


def is_loopback(address: str) -> bool:
    """True for an address only this machine reaches (``127.0.0.1``, ``::1``, ``localhost``)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere
