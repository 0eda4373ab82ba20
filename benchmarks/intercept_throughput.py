#!/usr/bin/env python3
"""What intercept mode costs on the data plane: an authenticated chat completion (the gateway of
benchmarks/dataplane.py: a real `cielo up` in front of the null upstream) sent straight to Cielo's listener
(`https://127.0.0.1:PORT/accounts/cielo-openai/openai/...`) versus through the intercept proxy under the
account's Azure host (`https://cielo-openai.openai.azure.com/openai/...`), in the same run, interleaved.

Reported: the median latency at one connection (the proxy's added p50) and the throughput at --concurrency
connections (the proxy's share of the direct throughput). Targets (issue "zero code change"): at most 1 ms added
at the median, at least 80 % of the direct throughput.

The client is aiohttp (one connection per simulated client, kept alive; through the proxy, one CONNECT tunnel per
connection, as requests, httpx and Node's agents keep theirs). Client, proxy and server share this machine's
CPUs, so the throughput figures are for this machine only; the comparison is what counts.

Usage:  .venv/bin/python benchmarks/intercept_throughput.py [--concurrency 32] [--duration 5] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from gateway_rig import ACCOUNT, Gateway, gateway_rig


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Target:
    def __init__(self, gateway: Gateway, proxy: str | None) -> None:
        self.proxy = proxy
        # One target per deployment, taken in turn: a deployment admits at most 100 req/s (gateway_rig.py).
        if proxy is None:
            self.urls = [gateway.server.base_url + path for path in gateway.paths]
        else:  # the same requests under the account's Azure host: `/accounts/{name}` is what the host names
            self.urls = [f"https://{ACCOUNT}.openai.azure.com" + path.removeprefix(f"/accounts/{ACCOUNT}")
                         for path in gateway.paths]
        self.turn = 0
        self.headers, self.body = gateway.headers, gateway.body.encode()
        self.context = ssl.create_default_context(cafile=gateway.server.bundle)

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=self.context))

    async def one(self, session: aiohttp.ClientSession) -> float:
        self.turn += 1
        url = self.urls[self.turn % len(self.urls)]
        started = time.perf_counter()
        async with session.post(url, data=self.body, headers=self.headers, proxy=self.proxy) as answer:
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{url}: {answer.status} {await answer.text()}")
        return time.perf_counter() - started


async def _latency(target: Target, requests: int) -> list[float]:
    async with target.session() as session:
        await target.one(session)  # the connection (and tunnel) opened before timing
        return [await target.one(session) for _ in range(requests)]


async def _throughput(target: Target, concurrency: int, seconds: float) -> float:
    sessions = [target.session() for _ in range(concurrency)]
    try:
        await asyncio.gather(*(target.one(s) for s in sessions))  # warm every connection
        done = 0
        deadline = time.perf_counter() + seconds

        async def client(session: aiohttp.ClientSession) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await target.one(session)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(s) for s in sessions))
        return done / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


def _interleaved(runs: int, measure: Callable[[Target], Awaitable[Any]], direct: Target, proxied: Target,
                 ) -> tuple[list[Any], list[Any]]:
    out: tuple[list[Any], list[Any]] = ([], [])
    for _ in range(runs):
        out[0].append(asyncio.run(measure(direct)))
        out[1].append(asyncio.run(measure(proxied)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency run")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs of each kind")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deployments", type=int, default=24, help="each admits at most 100 req/s")
    args = parser.parse_args()

    proxy_port = _free_port()
    with tempfile.TemporaryDirectory(prefix="cielo-intercept-bench-") as tmp, \
            gateway_rig(Path(tmp) / "data", workers=args.workers, deployments=args.deployments,
                        extra_args=("--intercept-port", str(proxy_port))) as gateway:
        direct, proxied = Target(gateway, None), Target(gateway, f"http://127.0.0.1:{proxy_port}")
        lat_direct, lat_proxy = _interleaved(args.repeat, lambda t: _latency(t, args.requests), direct, proxied)
        rps_direct, rps_proxy = _interleaved(
            args.repeat, lambda t: _throughput(t, args.concurrency, args.duration), direct, proxied)

    p50_direct = statistics.median(x for run in lat_direct for x in run) * 1000
    p50_proxy = statistics.median(x for run in lat_proxy for x in run) * 1000
    best_direct, best_proxy = max(rps_direct), max(rps_proxy)
    print(f"# intercept_throughput: {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{len(__import__('os').sched_getaffinity(0))} CPUs, cielo up --workers {args.workers}, null upstream")
    print(f"{'':32} {'direct':>10} {'proxy':>10} {'proxy vs direct':>16}")
    print(f"{'p50 at 1 connection (ms)':32} {p50_direct:10.2f} {p50_proxy:10.2f} {p50_proxy - p50_direct:+15.2f}ms")
    print(f"{f'req/s at {args.concurrency} connections (best)':32} {best_direct:10.0f} {best_proxy:10.0f} "
          f"{best_proxy / best_direct:15.0%}")
    print(f"runs (req/s): direct {[round(x) for x in rps_direct]}, proxy {[round(x) for x in rps_proxy]}")


if __name__ == "__main__":
    main()
