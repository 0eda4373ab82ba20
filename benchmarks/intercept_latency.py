#!/usr/bin/env python3
"""The latency intercept mode adds: one request straight to Cielo's HTTPS listener vs the same request through
the intercept proxy under an Azure host name (`https://management.azure.com/healthz`), in the same run.

Two cases: a kept-alive connection (the tunnel and both TLS sessions already open: the proxy's per-request
cost is copying bytes through one more process hop) and a new connection per request (the CONNECT exchange,
the client's TLS handshake with the proxy's leaf and the proxy's own handshake with Cielo's listener).

Usage:  .venv/bin/python benchmarks/intercept_latency.py [--requests 300] [--cold 50]
It starts its own `cielo up --intercept-port` on a temporary data directory and stops it at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(data_dir: Path, port: int, proxy_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CIELO_ADMIN_PASSWORD": "Adm1n-Passw0rd!"}
    process = subprocess.Popen([sys.executable, "-m", "cielo.cli.main", "up", "--data-dir", str(data_dir),
                                "--port", str(port), "--intercept-port", str(proxy_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    bundle = data_dir / "tls" / "bundle.pem"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if bundle.exists() and httpx.get(f"https://127.0.0.1:{port}/healthz", verify=str(bundle)).is_success:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("cielo up did not start")


def _timed(n: int, call: Callable[[], None]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _line(label: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"{label:<34} median {statistics.median(samples):7.3f} ms   p90 {q[89]:7.3f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--cold", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port, proxy_port = _free_port(), _free_port()
        process = _start(Path(tmp) / "data", port, proxy_port)
        bundle = str(Path(tmp) / "data" / "tls" / "bundle.pem")
        direct_url, proxied_url = f"https://127.0.0.1:{port}/healthz", "https://management.azure.com/healthz"
        proxy = f"http://127.0.0.1:{proxy_port}"
        try:
            with httpx.Client(verify=bundle) as direct, httpx.Client(verify=bundle, proxy=proxy) as proxied:
                for client, url in ((direct, direct_url), (proxied, proxied_url)):
                    _timed(20, lambda c=client, u=url: c.get(u).raise_for_status())  # warm up
                warm_direct = _timed(args.requests, lambda: direct.get(direct_url).raise_for_status())
                warm_proxied = _timed(args.requests, lambda: proxied.get(proxied_url).raise_for_status())

            def cold(url: str, via: str | None) -> None:
                with httpx.Client(verify=bundle, proxy=via) as client:
                    client.get(url).raise_for_status()

            cold_direct = _timed(args.cold, lambda: cold(direct_url, None))
            cold_proxied = _timed(args.cold, lambda: cold(proxied_url, proxy))
        finally:
            process.terminate()
            process.wait(10)
    print("GET /healthz, one client, sequential (Cielo's listener and the proxy in one `cielo up`)")
    print(_line("kept-alive, direct", warm_direct))
    print(_line("kept-alive, through the proxy", warm_proxied))
    print(_line("new connection each, direct", cold_direct))
    print(_line("new connection each, through proxy", cold_proxied))
    print(f"added (medians): kept-alive {statistics.median(warm_proxied) - statistics.median(warm_direct):.3f} ms, "
          f"new connection {statistics.median(cold_proxied) - statistics.median(cold_direct):.3f} ms")


if __name__ == "__main__":
    main()
