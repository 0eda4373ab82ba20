"""Running the HTTPS server: one or more worker processes sharing pre-bound sockets."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import ssl
from collections.abc import Sequence

import uvicorn

from cielo.api.app import create_app
from cielo.identity.pki import TlsFiles
from cielo.settings import Settings

log = logging.getLogger("cielo")


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets that say so, and
    # without it Nagle's algorithm and delayed ACKs add 40 ms to every TLS response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve(settings: Settings, tls: TlsFiles, sockets: Sequence[socket.socket]) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        ssl_certfile=str(tls.server_cert),
        ssl_keyfile=str(tls.server_key),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        timeout_keep_alive=30,
        # Idle keep-alive connections must not hold a shutdown up.
        timeout_graceful_shutdown=3,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    server.run(sockets=list(sockets))  # uvicorn picks uvloop when it is installed
    if multiprocessing.parent_process() is not None:
        os._exit(0)  # a worker: do not wait for model threads still generating (see cli/up.py)


def run(settings: Settings, tls: TlsFiles, sockets: Sequence[socket.socket]) -> None:
    """Serve until SIGINT/SIGTERM.

    With workers > 1 each worker gets its own listening sockets bound with SO_REUSEPORT (the caller
    binds the first set that way), so the kernel spreads connections across workers. With one shared
    socket, the first event loop to wake accepts a whole burst of connections and the other workers idle.
    """
    if settings.workers <= 1:
        _serve(settings, tls, sockets)
        return
    socket_sets = [list(sockets)]
    for _ in range(settings.workers - 1):
        socket_sets.append([bind(*s.getsockname()[:2], reuse_port=True) for s in sockets])
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_serve, args=(settings, tls, own), daemon=False) for own in socket_sets]
    for child in children:
        child.start()
    for own in socket_sets:
        for sock in own:
            sock.close()

    def _stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid:
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for child in children:
        child.join()
