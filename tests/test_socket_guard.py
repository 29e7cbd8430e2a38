"""The suite's network guard (tests/socket_guard.py): loopback and unix sockets only."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.socket_guard import NonLoopbackConnection, SocketGuard, is_loopback


@pytest.mark.parametrize(
    ("family", "address", "allowed"),
    [
        (socket.AF_INET, ("127.0.0.1", 80), True),
        (socket.AF_INET, ("127.8.9.10", 80), True),
        (socket.AF_INET, ("localhost", 80), True),
        (socket.AF_INET6, ("::1", 80, 0, 0), True),
        (socket.AF_UNIX, "/tmp/x.sock", True),
        (socket.AF_INET, ("192.0.2.1", 80), False),
        (socket.AF_INET, ("huggingface.co", 443), False),
        (socket.AF_INET6, ("2001:db8::1", 80, 0, 0), False),
        (socket.AF_INET, ("0.0.0.0", 80), False),
    ],
)
def test_only_loopback_is_allowed(family: int, address: object, allowed: bool) -> None:
    assert is_loopback(family, address) is allowed


def test_a_connect_elsewhere_raises_and_is_recorded(loopback_only: SocketGuard) -> None:
    with pytest.raises(NonLoopbackConnection, match=r"192\.0\.2\.1"):
        socket.create_connection(("192.0.2.1", 9), timeout=1)
    with socket.socket() as sock, pytest.raises(NonLoopbackConnection):
        sock.connect_ex(("192.0.2.1", 9))
    # Recorded even where the code under test swallows the error: the fixture fails the test.
    assert len(loopback_only.refused) == 2
    loopback_only.refused.clear()  # this test expected both; nothing left to fail it


def test_loopback_and_unix_sockets_still_connect(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # the backlog accepts
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as unix_server:
        unix_server.bind(path)
        unix_server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)


def test_a_fresh_guard_refuses_nothing_yet() -> None:
    assert SocketGuard().refused == []
