"""api/server.py's listening sockets: `listen` refuses an address something already listens on, naming who (from
/proc on Linux, a connection attempt elsewhere), even where SO_REUSEPORT would let the kernel bind beside it.
Loopback only; no server is started."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cielo.api import server
from cielo.errors import PortInUse

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture()
def held() -> Iterator[tuple[socket.socket, int]]:
    """A port this test process listens on."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock, sock.getsockname()[1]
    sock.close()


def test_listen_gives_a_listening_inheritable_no_delay_socket() -> None:
    sock = server.listen("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.get_inheritable()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        sock.close()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_in_use_is_refused_naming_its_holder(held: tuple[socket.socket, int], reuse_port: bool) -> None:
    _, port = held
    with pytest.raises(PortInUse) as caught:
        server.listen("127.0.0.1", port, reuse_port=reuse_port)
    message = str(caught.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: the port is in use by pid {os.getpid()} (")
    assert "pytest" in message or "python" in message, message


@pytest.mark.parametrize(("host", "clashes"), [("127.0.0.1", True), ("0.0.0.0", True), ("localhost", True),
                                              ("127.0.0.2", False)])
def test_port_holder_sees_wildcards_and_names(held: tuple[socket.socket, int], host: str, clashes: bool) -> None:
    _, port = held
    assert (server.port_holder(host, port) is not None) == clashes


def test_a_free_port_has_no_holder_and_a_socket_can_ignore_itself(held: tuple[socket.socket, int]) -> None:
    sock, port = held
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    assert server.port_holder("127.0.0.1", free_port) is None
    assert server.port_holder("127.0.0.1", port, ignore={os.fstat(sock.fileno()).st_ino}) is None


def test_without_proc_a_connection_attempt_decides(held: tuple[socket.socket, int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, port = held

    def unreadable(*_args: object) -> set[int]:
        raise PermissionError("no /proc here")

    monkeypatch.setattr(server, "_listening_inodes", unreadable)
    assert server.port_holder("127.0.0.1", port) == "another process"
    assert server.port_holder("0.0.0.0", port) == "another process"  # tried at 127.0.0.1
    held[0].close()
    assert server.port_holder("127.0.0.1", port) is None


def test_a_holder_that_cannot_be_traced_is_another_process(held: tuple[socket.socket, int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_processes_holding", lambda _inodes: {})
    assert server.port_holder("127.0.0.1", held[1]) == "another process"


@pytest.mark.parametrize(("hex_address", "address"), [
    ("0100007F", "127.0.0.1"),
    ("00000000", "0.0.0.0"),
    ("00000000000000000000000001000000", "::1"),
    ("0000000000000000FFFF00000100007F", "127.0.0.1"),  # IPv4-mapped: the IPv4 address
])
def test_proc_addresses_are_read_in_host_byte_order(hex_address: str, address: str) -> None:
    if sys.byteorder != "little":
        pytest.skip("the table above is in little-endian words")
    assert server._proc_address(hex_address) == ipaddress.ip_address(address)


@pytest.mark.parametrize(("cmdline", "comm", "shown"), [
    (b"python\0-m\0cielo\0up\0", "python", "python -m cielo up"),
    (b"", "kworker/0:1\n", "kworker/0:1"),
    (b"x" * 200, "x", "x" * 157 + "..."),
])
def test_a_holder_is_named_by_its_command_line(tmp_path: Path, cmdline: bytes, comm: str, shown: str) -> None:
    (tmp_path / "cmdline").write_bytes(cmdline)
    (tmp_path / "comm").write_text(comm)
    assert server._command(tmp_path) == shown
    assert server._command(tmp_path / "gone") == "?"


def test_a_descriptor_closed_during_the_scan_does_not_hide_its_process(held: tuple[socket.socket, int],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy process opens and closes descriptors while /proc is read: one that is gone by its readlink must not
    hide the process's other descriptors (it made `cielo up` say "another process" for a port this process held)."""
    _, port = held
    real_readlink = os.readlink
    gone: list[str] = []

    def readlink(path: str | os.PathLike[str]) -> str:
        if not gone and str(path).startswith(f"/proc/{os.getpid()}/fd/"):
            gone.append(str(path))  # this process's first descriptor closes as it is read
            raise FileNotFoundError(path)
        return real_readlink(path)

    monkeypatch.setattr(server.os, "readlink", readlink)
    assert (server.port_holder("127.0.0.1", port) or "").startswith(f"pid {os.getpid()} (")
    assert gone
