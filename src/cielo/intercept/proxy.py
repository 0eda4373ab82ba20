"""The intercept proxy: HTTP CONNECT on loopback, TLS terminated for Azure's hosts, the decrypted HTTP handed
to Cielo's own HTTPS listener on loopback.

Safety rules (docs/zero-code-change.md): it listens on loopback unless told otherwise; it opens no connection
anywhere but Cielo's own listener and, when configured, a managed-identity agent on loopback; a CONNECT to any
host it does not serve, any port but 443, and any plain-HTTP request but one for IMDS's address
(169.254.169.254, handed to that agent) is refused with 403 naming the host and the hosts it serves.

Why hand the bytes to the HTTPS listener rather than call the ASGI app in this process: `cielo up` may run
several worker processes, and the listener is where their load is spread and where every limit and log
applies; the tunnel passes the client's bytes through unchanged (its Host header included, which the app's
HostRouting reads). The cost is a second TLS session per tunnel on loopback; benchmarks/intercept_latency.py
measures it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cielo.intercept.certs import HostCertificates
from cielo.intercept.hosts import SERVED_PATTERNS, host_name, is_served

log = logging.getLogger("cielo.intercept")

MAX_HEAD = 16 * 1024
IMDS_HOST = "169.254.169.254"
# Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own: not passed on to the agent.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te",
                         b"trailer", b"upgrade"})
HEAD_TIMEOUT_S = 30.0
CHUNK = 64 * 1024


class ProxyRefusal(Exception):
    """A request the proxy does not serve: rendered as a plain-text HTTP error and the connection closed."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def refusal_for_host(host: str) -> ProxyRefusal:
    return ProxyRefusal(403, "Forbidden",
                        f"cielo intercept does not serve {host}: it serves only {', '.join(SERVED_PATTERNS)} "
                        "(port 443) and Cielo's own address, and never forwards anywhere else. "
                        "Add the host to NO_PROXY to reach it directly.")


@dataclass(frozen=True)
class Upstream:
    """Cielo's HTTPS listener, dialled on loopback and verified against Cielo's CA."""

    host: str
    port: int
    ca_file: Path

    def own(self) -> frozenset[tuple[str, int]]:
        """The names a client may CONNECT to for Cielo's own listener: what its discovery documents name
        (https://127.0.0.1:PORT/...) when a client sends loopback through the proxy too (no NO_PROXY)."""
        return frozenset((name, self.port) for name in {self.host, "localhost", "127.0.0.1", "::1"})

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.check_hostname = False  # the chain must be Cielo's CA; the address is ours, dialled by us
        return context


def imds_refusal() -> ProxyRefusal:
    # azure-identity reads a 403 whose message says "unreachable" as "no IMDS here" (CredentialUnavailableError),
    # so DefaultAzureCredential goes on to its next credential, as it does where IMDS does not answer.
    return ProxyRefusal(403, "Forbidden",
                        f"cielo intercept: IMDS ({IMDS_HOST}) is unreachable: no managed-identity agent is configured "
                        "(start `cielo agent` and give its address to `cielo up --intercept-imds HOST:PORT`).")


def imds_request(head: bytes) -> bytes | None:
    """The head of a plain-HTTP request for IMDS (`GET http://169.254.169.254/metadata/...`) rewritten for the
    agent: origin-form target, hop-by-hop headers dropped, `Connection: close`; None for any other request.
    ProxyRefusal when it is for IMDS but malformed or carries a body (IMDS requests are GETs)."""
    lines = head.split(b"\r\n")
    try:
        method, target, version = lines[0].decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        return None
    prefix = f"http://{IMDS_HOST}"
    if method == "CONNECT" or not target.lower().startswith(prefix):
        return None
    rest = target[len(prefix):]
    if rest.startswith(":80/"):
        rest = rest[3:]
    if not rest.startswith("/"):
        return None
    if method not in ("GET", "HEAD") or not version.startswith("HTTP/1."):
        raise ProxyRefusal(405, "Method Not Allowed", "cielo intercept: IMDS requests are GET requests")
    kept = []
    for line in lines[1:]:
        if not line:
            continue
        name = line.split(b":", 1)[0].strip().lower()
        if name in (b"content-length", b"transfer-encoding") and line.split(b":", 1)[1].strip() not in (b"0", b""):
            raise ProxyRefusal(400, "Bad Request", "cielo intercept: an IMDS request carries no body")
        if name not in _HOP_BY_HOP:
            kept.append(line)
    return b"\r\n".join([f"{method} {rest} HTTP/1.1".encode(), *kept, b"Connection: close", b"", b""])


def parse_connect(head: bytes, own: frozenset[tuple[str, int]] = frozenset()) -> tuple[str, int]:
    """The (host, port) of a CONNECT request head to a served host or to Cielo's own listener (`own`);
    ProxyRefusal for anything else."""
    try:
        line = head.split(b"\r\n", 1)[0].decode("ascii")
        method, target, version = line.split(" ")
    except (UnicodeDecodeError, ValueError):
        raise ProxyRefusal(400, "Bad Request", "cielo intercept: malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise ProxyRefusal(400, "Bad Request", "cielo intercept: HTTP/1.x only")
    if method != "CONNECT":
        # An absolute-form plain-HTTP request (`GET http://host/...`): never forwarded.
        authority = target.partition("://")[2].split("/", 1)[0] if "://" in target else target
        raise refusal_for_host(host_name(authority) or "(no host)")
    host, sep, port_text = target.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ProxyRefusal(400, "Bad Request", f"cielo intercept: CONNECT needs host:port, not {target}")
    port = int(port_text)
    name = host_name(host).strip("[]")
    if (name, port) in own:
        return name, port
    if port != 443 or not is_served(name):
        raise refusal_for_host(f"{name}:{port}")
    return name, port


class InterceptProxy:
    def __init__(self, certs: HostCertificates, upstream: Upstream, imds: tuple[str, int] | None = None) -> None:
        """`imds`: a managed-identity agent (`cielo agent`) on loopback that answers plain-HTTP requests for
        IMDS's address, so `ManagedIdentityCredential()` with no settings reaches it through HTTP_PROXY."""
        self.certs, self.upstream, self.imds = certs, upstream, imds
        self._upstream_context = upstream.context()
        self._own = upstream.own()

    async def serve(self, sock: socket.socket) -> asyncio.Server:
        return await asyncio.start_server(self.handle, sock=sock, limit=MAX_HEAD)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _no_delay(writer)
        try:
            await self._tunnel(reader, writer)
        except ProxyRefusal as refusal:
            await _answer(writer, refusal)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ssl.SSLError) as exc:
            log.debug("intercept: connection ended: %r", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            raise ProxyRefusal(431, "Request Header Fields Too Large", "cielo intercept: request head too large")\
                from None
        forwarded = imds_request(head)
        if forwarded is not None:
            await self._imds(forwarded, writer)
            return
        host, port = parse_connect(head, self._own)
        if (host, port) in self._own:
            # Cielo's own address: a plain byte tunnel; the client checks Cielo's own certificate end to end.
            up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            context = self.certs.context(host)
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(context)
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream.host, self.upstream.port, ssl=self._upstream_context, server_hostname=host)
        _no_delay(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await up_writer.wait_closed()


    async def _imds(self, head: bytes, writer: asyncio.StreamWriter) -> None:
        """One IMDS request to the agent and its answer back; the connection then closes (the agent was asked
        for `Connection: close`, and clients open another)."""
        if self.imds is None:
            raise imds_refusal()
        up_reader, up_writer = await asyncio.open_connection(*self.imds)
        try:
            up_writer.write(head)
            await up_writer.drain()
            while data := await up_reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        finally:
            up_writer.close()
            with contextlib.suppress(OSError):
                await up_writer.wait_closed()


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """TCP_NODELAY on both legs: an answer's head and body leave as two small TLS records, and with Nagle the
    second waits for the client's delayed ACK (about 40 ms on Linux). asyncio sets it only on sockets whose
    proto is IPPROTO_TCP, which a socket made by socket.socket(AF_INET, SOCK_STREAM) is not."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError, ssl.SSLError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


async def _answer(writer: asyncio.StreamWriter, refusal: ProxyRefusal) -> None:
    body = (refusal.message + "\n").encode()
    writer.write(f"HTTP/1.1 {refusal.status} {refusal.reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(OSError):
        await writer.drain()


def listen(host: str, port: int) -> socket.socket:
    """The proxy's listening socket, bound before Cielo starts so a busy port is refused at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def start_in_thread(proxy: InterceptProxy, sock: socket.socket) -> threading.Thread:
    """Serve the proxy on its own event loop in a daemon thread of `cielo up` (it ends with the process)."""
    def main() -> None:
        async def serve_forever() -> None:
            server = await proxy.serve(sock)
            async with server:
                await server.serve_forever()
        asyncio.run(serve_forever())

    thread = threading.Thread(target=main, name="cielo-intercept", daemon=True)
    thread.start()
    return thread
