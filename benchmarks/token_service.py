#!/usr/bin/env python3
"""Token service throughput: client_credentials tokens per second over HTTPS.

Side by side in one run:
  * the raw RS256 signing rate of `cryptography` on this machine (one process, and one per core),
  * a real `cielo up` (1 and 2 workers) answering `POST /{tenant}/oauth2/v2.0/token` with
    grant_type=client_credentials and a client secret, driven by benchmarks/loadgen.py
    (Debian's wrk when installed, else aiohttp) over keep-alive HTTPS connections.

Every number is measured in this run; nothing is compared with a stored baseline.
Usage: .venv/bin/python benchmarks/token_service.py [--duration 8] [--concurrency 1,16,32]
Writes benchmarks/results/token_service.json (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.server import start_server  # noqa: E402

LOADGEN = Path(__file__).resolve().with_name("loadgen.py")


def _sign_loop(seconds: float) -> int:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"x" * 900  # about the size of an access token's signing input
    count = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    return count


def raw_sign_rate(processes: int, seconds: float = 3.0) -> float:
    if processes == 1:
        return _sign_loop(seconds) / seconds
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return sum(pool.map(_sign_loop, [seconds] * processes)) / seconds


def run_loadgen(loadgen: Path, url: str, body_file: Path, concurrency: int, duration: int) -> dict[str, object]:
    out = Path(tempfile.mkstemp(suffix=".jsonl")[1])
    cmd = [sys.executable, str(loadgen), url, "--body-file", str(body_file),
           "-H", "Content-Type: application/x-www-form-urlencoded", "-c", str(concurrency),
           "-d", str(duration), "--warmup", "2", "--json", str(out), "--label", f"c{concurrency}"]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = out.read_text().splitlines()
    out.unlink()
    if not lines:
        raise RuntimeError("the load generator produced no result")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--concurrency", default="1,16,32", help="comma-separated connection counts")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores; Python {sys.version.split()[0]}", flush=True)
    raw1 = raw_sign_rate(1)
    rawn = raw_sign_rate(cores)
    print(f"raw RS256 sign rate (cryptography): {raw1:,.0f}/s in 1 process, {rawn:,.0f}/s in {cores}", flush=True)

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [int(w) for w in args.workers.split(",")]:
            server = start_server(Path(tmp) / f"data-w{workers}", extra_args=("--workers", str(workers)))
            try:
                app = server.create_app(f"bench-{workers}")
                form = {"client_id": app["appId"], "client_secret": app["secret"],
                        "grant_type": "client_credentials", "scope": "https://cognitiveservices.azure.com/.default"}
                assert "access_token" in server.token(form)  # the exact request works before timing it
                body = Path(tmp) / "body.txt"
                body.write_text(urlencode(form))
                url = f"{server.base_url}/{server.tenant_id}/oauth2/v2.0/token"
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    result = run_loadgen(LOADGEN, url, body, concurrency, args.duration)
                    med = result["median"]
                    assert isinstance(med, dict)
                    statuses = result["statuses_total"]
                    rows.append({"workers": workers, "concurrency": concurrency, "tokens_per_s": med["rps"],
                                 "p50_ms": med["p50_ms"], "p99_ms": med["p99_ms"], "statuses": statuses,
                                 "engine": result["engine"]})
                    print(f"  workers={workers} c={concurrency:<3} {med['rps']:8.0f} tokens/s  p50 "
                          f"{med['p50_ms']:.2f} ms  p99 {med['p99_ms']:.2f} ms  {statuses}", flush=True)
            finally:
                server.stop()

    print()
    print("| cielo workers | connections | tokens/s | p50 ms | p99 ms | % of raw 1-process sign rate |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        pct = float(row["tokens_per_s"]) / raw1 * 100  # type: ignore[arg-type]
        print(f"| {row['workers']} | {row['concurrency']} | {row['tokens_per_s']:,.0f} | {row['p50_ms']:.2f} | "
              f"{row['p99_ms']:.2f} | {pct:.0f}% |")
    print(f"| raw sign, 1 process | - | {raw1:,.0f} | - | - | 100% |")
    print(f"| raw sign, {cores} processes | - | {rawn:,.0f} | - | - | {rawn / raw1 * 100:.0f}% |")
    best = max(float(r["tokens_per_s"]) for r in rows)  # type: ignore[arg-type]
    print(f"\nbest: {best:,.0f} tokens/s = {best / raw1 * 100:.0f}% of the raw 1-process rate "
          f"(targets: >= 1,000/s and >= 50%)")
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "token_service.json").write_text(json.dumps(
        {"raw_sign_1": raw1, f"raw_sign_{cores}": rawn, "rows": rows, "ts": time.time()}, indent=2))


if __name__ == "__main__":
    main()
