"""Tests may talk to this machine only: loopback addresses, `localhost` and unix sockets.

A test that reaches for any other address (a real hub, a real Sigstore, a DNS name that slipped
through a fake) would pass or fail with the network, not with the code. The guard wraps
`socket.socket.connect` and `connect_ex` (which `socket.create_connection`, http.client, httpx,
requests and asyncio all go through); a refused connect raises `NonLoopbackConnection` and is
recorded, so that a caller which swallows the error still fails its test at teardown.

It does not see connections made by C libraries (libpq) or by subprocesses; both only ever get
loopback URLs from the fixtures.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import pytest

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NonLoopbackConnection(RuntimeError):
    """A test tried to connect somewhere other than this machine."""


def is_loopback(family: int, address: object) -> bool:
    """Whether a connect to `address` stays on this machine."""
    if family == getattr(socket, "AF_UNIX", object()):
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:  # a host name: it would go through DNS to who knows where
        return False


class SocketGuard:
    """Installs the loopback-only connect for one test and keeps what it refused."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(socket.socket, "connect", self._guarded(socket.socket.connect))
        monkeypatch.setattr(socket.socket, "connect_ex", self._guarded(socket.socket.connect_ex))

    def _guarded(self, original: Callable[..., Any]) -> Callable[..., Any]:
        guard = self

        def connect(sock: socket.socket, address: Any) -> Any:
            if not is_loopback(sock.family, address):
                message = f"tests may connect only to loopback, not to {address!r}"
                guard.refused.append(message)
                sock.close()  # create_connection closes only on OSError; no ResourceWarning
                raise NonLoopbackConnection(message)
            return original(sock, address)

        return connect
