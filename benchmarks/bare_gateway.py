#!/usr/bin/env python3
"""The least a gateway in front of a model can do: the baseline for Cielo's data-plane overhead.

FastAPI on uvicorn with TLS as Cielo serves it (its server certificate, uvloop, httptools), one route that
validates the bearer token with PyJWT (RS256 signature, exp/nbf, audience, issuer) against the JWKS Cielo
publishes, and forwards the request body with a pooled aiohttp session to an OpenAI-compatible upstream, answering
with the upstream's JSON. No RBAC, no quota, no body limits, no Azure shapes: what a hand-written proxy of a few
dozen lines costs, measured by benchmarks/dataplane.py in the same run as Cielo.

Usage (dataplane.py starts it itself):
    .venv/bin/python benchmarks/bare_gateway.py --port 0 --upstream http://127.0.0.1:PORT/v1 \
        --jwks https://127.0.0.1:8443/TENANT/discovery/v2.0/keys --issuer https://.../v2.0 --tls-dir DATA/tls
It prints `listening on https://127.0.0.1:PORT` once serving.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

AUDIENCES = ["https://cognitiveservices.azure.com", "https://cognitiveservices.azure.com/"]


def build_app(upstream: str, jwks: dict[str, Any], issuers: list[str]) -> FastAPI:
    keys = {k["kid"]: jwt.PyJWK(k, algorithm="RS256").key for k in jwks["keys"] if "kid" in k}
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    session: dict[str, aiohttp.ClientSession] = {}
    target = upstream.rstrip("/") + "/chat/completions"

    def http() -> aiohttp.ClientSession:
        if "s" not in session:
            session["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        return session["s"]

    @app.post("/{path:path}")
    async def forward(path: str, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return JSONResponse({"statusCode": 401, "message": "missing bearer"}, status_code=401)
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            jwt.decode(token, keys[kid], algorithms=["RS256"], audience=AUDIENCES, issuer=issuers,
                       leeway=300, options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, KeyError):
            return JSONResponse({"statusCode": 401, "message": "invalid bearer"}, status_code=401)
        body = json.loads(await request.body())
        body["model"] = "null"
        async with http().post(target, json=body) as answer:
            data = await answer.read()
            return Response(data, status_code=answer.status, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--upstream", required=True, help="the upstream's OpenAI base URL (…/v1)")
    parser.add_argument("--jwks", required=True, help="Cielo's JWKS URL")
    parser.add_argument("--issuer", action="append", required=True, help="accepted issuer (repeatable)")
    parser.add_argument("--tls-dir", required=True, type=Path, help="Cielo's data-dir/tls (server.pem, server-key.pem)")
    args = parser.parse_args()
    import httpx
    import uvicorn

    jwks = httpx.get(args.jwks, verify=str(args.tls_dir / "bundle.pem"), timeout=10).json()
    # One listening socket per worker with SO_REUSEPORT, as Cielo's server binds them (api/server.py).
    first = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    first.bind(("127.0.0.1", args.port))
    port = first.getsockname()[1]
    sockets = [first]
    for _ in range(args.workers - 1):
        extra = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        extra.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        extra.bind(("127.0.0.1", port))
        sockets.append(extra)
    for sock in sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.listen(2048)
        sock.set_inheritable(True)

    import multiprocessing

    def serve(sock: socket.socket) -> None:
        config = uvicorn.Config(build_app(args.upstream, jwks, args.issuer),
                                ssl_certfile=str(args.tls_dir / "server.pem"),
                                ssl_keyfile=str(args.tls_dir / "server-key.pem"), ssl_version=ssl.PROTOCOL_TLS_SERVER,
                                log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30)
        uvicorn.Server(config).run(sockets=[sock])

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=serve, args=(sock,), daemon=True) for sock in sockets]
    for worker in workers:
        worker.start()

    def stop(signum: int, _frame: object) -> None:
        # SIGTERM (dataplane.py stopping it) would otherwise end this process alone and leave its workers
        # serving: daemon workers are only ended on a normal exit.
        for worker in workers:
            if worker.is_alive():
                worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on https://127.0.0.1:{port}", flush=True)
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
