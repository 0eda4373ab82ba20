#!/usr/bin/env python3
"""Scale-out: one server with two workers on SQLite versus two replicas with one worker each on PostgreSQL + Redis,
on this machine, in the same run, interleaved.

Setup "single": `cielo up --workers 2` on a SQLite data directory (quota counters in the workers' shared file,
caches refreshed by file markers). Setup "replicated": two `cielo up --workers 1` (tests/scaleout/replicas.py)
sharing a new PostgreSQL database and Redis (`--redis-url`: quota windows in Redis, caches kept current by the
change feed). Both name the same null upstream (benchmarks/null_upstream.py, one process) with `--upstream` for
`--deployments` capacity-1,000 deployments each, and a service principal holding Cognitive Services OpenAI User
sends authenticated chat completions (benchmarks/gateway_rig.py's request).

Measured:
- throughput and latency: benchmarks/loadgen.py (python engine) in two generator processes of `--concurrency`
  connections each; against "single" both target its one port, against "replicated" one targets each replica. Runs
  alternate single, replicated, single, ... (`--rounds`); the medians are reported. req/s is the sum of both
  generators; p50 the mean of theirs, p99 the larger.
- quota over-admission: a capacity-20 deployment (20 requests per 10 s); at the start of a window 3 x 20 requests
  at once, spread over the setup's ports; admitted minus 20, as a share of 20 (`--quota-bursts` windows).
- role-change propagation (replicated only): a role assignment deleted through replica 0, then requests to
  replica 1 until one is refused; the time from the DELETE's answer to that refusal, and whether the very first
  request was refused; then the same for a grant (assignment created through replica 0, first 200 on replica 1).

Targets (issue 14): replicated >= 85 % of single's req/s; over-admission <= 1 % of the limit; propagation p99 < 100 ms.
The machine is shared (2 cores, other people's tests): the runs are interleaved so both setups see the same noise.

Usage: .venv/bin/python benchmarks/scale_out.py [--duration 5] [--rounds 3] [--concurrency 16]
Writes benchmarks/results/scale_out.json (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import loadgen
from gateway_rig import (
    CHAT_BODY,
    DATA_API,
    OPENAI_USER,
    QUOTA_CAPACITY,
    REPO,
    Arm,
    NullUpstream,
    start_server,
    upstream_name,
)

sys.path.insert(0, str(REPO / "tests" / "scaleout"))
from replicas import cluster, postgres_database

TARGET_SHARE, TARGET_OVER_PCT, TARGET_PROPAGATION_MS = 85.0, 1.0, 100.0
TIGHT_CAPACITY = 20


@dataclass
class Setup:
    name: str
    urls: list[str]  # one origin per port
    bundle: str
    paths: list[str]
    headers: dict[str, str]
    body: str
    arm: Arm
    tight_path: str


def _deployments(arm: Arm, count: int) -> list[str]:
    for index in range(count):
        name = upstream_name(index)
        arm.deploy(name, {"format": "OpenAI-Compatible", "name": name, "version": "1"}, QUOTA_CAPACITY)
    arm.deploy("tight", {"format": "OpenAI-Compatible", "name": upstream_name(count), "version": "1"}, TIGHT_CAPACITY)
    prefix = arm.endpoint().split("/accounts/", 1)[1].rstrip("/")
    return [f"/accounts/{prefix}/openai/deployments/{upstream_name(i)}/chat/completions?api-version={DATA_API}"
            for i in range(count)] + [f"/accounts/{prefix}/openai/deployments/tight/chat/completions"
                                      f"?api-version={DATA_API}"]


def _setup(name: str, urls: list[str], bundle: str, arm: Arm, deployments: int) -> Setup:
    paths = _deployments(arm, deployments)
    token = arm.openai_user(f"bench-{name}-{os.getpid()}")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps(CHAT_BODY, separators=(",", ":"))
    for url in urls:  # every port answers the exact request before anything is timed
        with httpx.Client(verify=bundle, timeout=30) as client:
            check = client.post(url + paths[0], content=body, headers=headers)
            assert check.status_code == 200, check.text
    return Setup(name, urls, bundle, paths[:-1], headers, body, arm, paths[-1])


def _upstream_args(upstream: NullUpstream, deployments: int) -> tuple[str, ...]:
    args: list[str] = []
    for index in range(deployments + 1):  # + the tight deployment's model
        args += ["--upstream", f"{upstream_name(index)}={upstream.base_url}/v1,model=null"]
    return tuple(args)


@contextmanager
def setups(work: Path, deployments: int, redis_url: str) -> Iterator[tuple[Setup, Setup, Any]]:
    with ExitStack() as stack:
        upstream = NullUpstream(work / "null-upstream.log")
        stack.callback(upstream.stop)
        single = start_server(work / "single", extra_args=("--workers", "2", *_upstream_args(upstream, deployments)))
        stack.callback(single.stop)
        single_arm = Arm(single)
        stack.callback(single_arm.close)
        database_url = stack.enter_context(postgres_database("cielo_bench"))
        replicated = stack.enter_context(cluster(work / "replicated", 2, database_url, redis_url,
                                                 extra_args=_upstream_args(upstream, deployments)))
        replicated_arm = Arm(replicated.replicas[0])
        stack.callback(replicated_arm.close)
        yield (_setup("single", [single.base_url], single.bundle, single_arm, deployments),
               _setup("replicated", [r.base_url for r in replicated.replicas], replicated.replicas[0].bundle,
                      replicated_arm, deployments), replicated)


# ----------------------------------------------------------------------------- throughput
def _generate(args: tuple[str, list[str], dict[str, str], str, int, float, str]) -> dict[str, Any]:
    url, paths, headers, body, concurrency, seconds, _bundle = args
    plan = loadgen.Plan(url=url, method="POST", headers=tuple(headers.items()), body=body, paths=tuple(paths),
                        concurrency=concurrency, engine="python")
    return loadgen.measure(plan, seconds)


def throughput(setup: Setup, pool: Any, concurrency: int, seconds: float) -> dict[str, Any]:
    origins = [setup.urls[i % len(setup.urls)] for i in range(2)]
    jobs = [(origin + "/", setup.paths, setup.headers, setup.body, concurrency, seconds, setup.bundle)
            for origin in origins]
    results = pool.map(_generate, jobs)
    return {"rps": sum(r["rps"] for r in results), "p50_ms": statistics.fmean(r["p50_ms"] for r in results),
            "p99_ms": max(r["p99_ms"] for r in results), "non2xx": sum(r["non2xx"] for r in results),
            "socket_errors": sum(sum(r["socket_errors"].values()) for r in results)}


# ----------------------------------------------------------------------------- quota
async def _burst(setup: Setup, count: int) -> list[int]:
    clients = [httpx.AsyncClient(base_url=url, verify=setup.bundle, timeout=30) for url in setup.urls]
    try:
        calls = [clients[i % len(clients)].post(setup.tight_path, content=setup.body, headers=setup.headers)
                 for i in range(count)]
        return [r.status_code for r in await asyncio.gather(*calls)]
    finally:
        for client in clients:
            await client.aclose()


def over_admission(setup: Setup, bursts: int) -> dict[str, Any]:
    limit, period = TIGHT_CAPACITY, 10
    admitted = []
    for _ in range(bursts):
        while time.time() % period > 0.5 or time.time() % period < 0.05:  # just after a window starts
            time.sleep(0.02)
        statuses = asyncio.run(_burst(setup, 3 * limit))
        admitted.append(statuses.count(200))
        time.sleep(1.0)
    over = [max(0, a - limit) for a in admitted]
    return {"limit": limit, "admitted": admitted, "over_admission_pct": 100.0 * sum(over) / (limit * bursts)}


# ----------------------------------------------------------------------------- propagation
def propagation(setup: Setup, trials: int) -> dict[str, Any]:
    """Role assignment deleted / created through replica 0; requests to replica 1 until the change shows."""
    arm = setup.arm
    server = arm.server
    app = server.create_app(f"propagation-{uuid.uuid4().hex[:6]}")
    token = server.token({"client_id": app["appId"], "client_secret": app["secret"],
                          "grant_type": "client_credentials",
                          "scope": "https://cognitiveservices.azure.com/.default"})["access_token"]
    headers = {**setup.headers, "Authorization": f"Bearer {token}"}
    role = f"/subscriptions/{server.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER}"
    revoke_ms, grant_ms, first_revoke, first_grant = [], [], 0, 0
    with httpx.Client(base_url=setup.urls[1], verify=setup.bundle, timeout=30) as other:
        def until(status: int) -> tuple[float, bool]:
            start, first = time.perf_counter(), True
            while True:
                answer = other.post(setup.paths[0], content=setup.body, headers=headers)
                if answer.status_code == status:
                    return (time.perf_counter() - start) * 1000, first
                first = False
                if time.perf_counter() - start > 10:
                    raise RuntimeError(f"no {status} within 10 s: {answer.status_code} {answer.text}")

        for _ in range(trials):
            name = str(uuid.uuid4())
            path = f"{arm.account}/providers/Microsoft.Authorization/roleAssignments/{name}"
            arm.call("PUT", path, {"properties": {"roleDefinitionId": role, "principalId": app["spObjectId"],
                                                  "principalType": "ServicePrincipal"}})
            ms, first = until(200)
            grant_ms.append(ms)
            first_grant += first
            other.post(setup.paths[0], content=setup.body, headers=headers)  # cached as a grant on replica 1
            arm.call("DELETE", path)
            ms, first = until(401)
            revoke_ms.append(ms)
            first_revoke += first

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"trials": trials,
            "revoke_p50_ms": pct(revoke_ms, 50), "revoke_p99_ms": pct(revoke_ms, 99),
            "revoke_first_request_denied": first_revoke,
            "grant_p50_ms": pct(grant_ms, 50), "grant_p99_ms": pct(grant_ms, 99),
            "grant_first_request_allowed": first_grant}


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16, help="connections per generator (two generators)")
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--quota-bursts", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30, help="role changes timed")
    parser.add_argument("--redis-url", default=os.environ.get("CIELO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with tempfile.TemporaryDirectory(prefix="cielo-scale-out-") as tmp, \
            setups(Path(tmp), args.deployments, args.redis_url) as (single, replicated, _cluster), \
            multiprocessing.get_context("fork").Pool(2) as pool:
        for setup in (single, replicated):
            throughput(setup, pool, args.concurrency, args.warmup)
        rows: dict[str, list[dict[str, Any]]] = {"single": [], "replicated": []}
        for round_ in range(args.rounds):
            for setup in (single, replicated) if round_ % 2 == 0 else (replicated, single):
                row = throughput(setup, pool, args.concurrency, args.duration)
                rows[setup.name].append(row)
                print(f"round {round_ + 1} {setup.name:10s} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
                      f"p99 {row['p99_ms']:6.2f} ms  non-2xx {row['non2xx']}  socket errors {row['socket_errors']}",
                      flush=True)
        quota = {s.name: over_admission(s, args.quota_bursts) for s in (single, replicated)}
        spread = propagation(replicated, args.trials)
    summary = {name: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")}
               for name, runs in rows.items()}
    share = 100.0 * summary["replicated"]["rps"] / summary["single"]["rps"]
    result = {"date": started, "machine": f"{platform.node()} {os.cpu_count()} CPUs {platform.machine()}",
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "runs": rows, "median": summary,
              "replicated_share_pct": share, "quota": quota, "propagation": spread}
    print()
    for name in ("single", "replicated"):
        m = summary[name]
        print(f"{name:10s} median {m['rps']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms  "
              f"over-admission {quota[name]['over_admission_pct']:.1f} % (admitted {quota[name]['admitted']} "
              f"of {quota[name]['limit']})")
    print(f"replicated keeps {share:.1f} % of single's throughput (target >= {TARGET_SHARE:.0f} %)")
    print(f"role change across replicas: revoke p50 {spread['revoke_p50_ms']:.1f} ms p99 {spread['revoke_p99_ms']:.1f}"
          f" ms (first request refused {spread['revoke_first_request_denied']}/{spread['trials']}); grant p50 "
          f"{spread['grant_p50_ms']:.1f} ms p99 {spread['grant_p99_ms']:.1f} ms (first request allowed "
          f"{spread['grant_first_request_allowed']}/{spread['trials']}); target p99 < {TARGET_PROPAGATION_MS:.0f} ms")
    out = REPO / "benchmarks" / "results" / "scale_out.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
