#!/usr/bin/env python3
"""Soak: many concurrent clients on a real multi-worker Cielo for a bounded time; errors and memory growth.

It starts benchmarks/null_upstream.py and a real `cielo up --workers N` in front of it, deploys the upstream
`--deployments` times (so that quota, 100 req/s per deployment, seldom answers 429), and takes a
client-credentials bearer token for a service principal holding Cognitive Services OpenAI User
(benchmarks/gateway_rig.py, shared with dataplane.py). Then `--clients` keep-alive HTTPS connections, each with
one request in flight, send authenticated chat completions through Cielo to the null upstream, cycling over
the deployments: a warm-up of `--warmup` seconds, then the soak of `--seconds` seconds
(benchmarks/loadgen.py: wrk when installed, else aiohttp).

Reported: requests; answers by status, 429 (quota) apart from other errors; socket errors; p50/p99 latency over
all answers; the resident memory (VmRSS from /proc) of Cielo's parent and worker processes, summed, when idle,
after the warm-up and after the soak, with its samples during the soak; whether every worker survived.

Targets: no errors other than 429 (warm-up included), RSS growth < 5% from after the warm-up to after the soak,
every process still running. The exit status is 1 when a target is missed (the server log is then kept in
benchmarks/results/soak-server.log), 0 otherwise. Everything runs on 127.0.0.1 and stops by itself: the soak
lasts at most 600 s, and each load run is killed a minute after its end at the latest.

Not part of the test suite. Usage:
  .venv/bin/python benchmarks/soak.py                                   # 200 clients, 60 s, 2 workers
  .venv/bin/python benchmarks/soak.py --clients 200 --seconds 30        # a short one
Writes benchmarks/results/soak.json (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import loadgen
from gateway_rig import REPO, gateway_rig

TARGET_OTHER_ERRORS = 0
TARGET_RSS_GROWTH_PCT = 5.0
SETTLE_S = 2.0  # after a load run, for connections to close before memory is read
RESULTS = REPO / "benchmarks" / "results"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB; 0 once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pids: list[int]) -> dict[int, float]:
    return {pid: rss_kib(pid) / 1024 for pid in pids}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def other_errors(run: dict[str, Any]) -> dict[str, int]:
    """Everything but a 2xx or a 429: statuses by code, socket errors by kind."""
    errors = {status: count for status, count in run["statuses"].items()
              if not status.startswith("2") and status != "429"}
    errors.update({f"socket {kind}": count for kind, count in run["socket_errors"].items()})
    return errors


def sample_during(work: Any, pids: list[int], every_s: float) -> tuple[dict[str, Any], list[tuple[float, float]]]:
    """Run `work()` in a thread and read the processes' summed RSS every `every_s` seconds until it ends."""
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(work)
        while True:
            try:
                result: dict[str, Any] = future.result(timeout=every_s)
                break
            except TimeoutError:
                samples.append((time.monotonic() - started, sum(rss_mib(pids).values())))
    return result, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="concurrent keep-alive connections")
    parser.add_argument("--seconds", type=float, default=60, help="length of the soak (at most 600)")
    parser.add_argument("--workers", type=int, default=2, help="cielo worker processes")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of the same load before memory is read")
    parser.add_argument("--deployments", type=int, default=100,
                        help="upstream deployments the clients cycle over (each admits 100 req/s)")
    parser.add_argument("--engine", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator (auto: wrk when installed)")
    parser.add_argument("--sample-every", type=float, default=5, help="seconds between RSS samples during the soak")
    parser.add_argument("--timeout", type=float, default=30, help="seconds before a request counts as timed out")
    args = parser.parse_args()
    if not 0 < args.seconds <= loadgen.MAX_SECONDS or not 0 <= args.warmup <= loadgen.MAX_SECONDS:
        sys.exit("--seconds must be more than 0 and --warmup at least 0, both at most 600")
    if args.clients < 1 or args.workers < 1 or args.deployments < 1:
        sys.exit("--clients, --workers and --deployments must be at least 1")

    engine = loadgen.resolve_engine(args.engine)
    load_before = os.getloadavg()
    print(f"soak: {args.clients} clients x {args.seconds:g} s (after {args.warmup:g} s of warm-up) of authenticated "
          f"chat completions; cielo --workers {args.workers}; {args.deployments} null-upstream deployments; "
          f"load generator {engine}", flush=True)
    print(f"machine: {os.cpu_count()} CPUs ({cpu_model()}); load average {' '.join(f'{v:.2f}' for v in load_before)}",
          flush=True)
    if engine != "wrk":
        print("  (wrk is not installed: the aiohttp engine needs CPU of its own; apt-get install wrk)", flush=True)

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="cielo-soak-") as tmp, \
            gateway_rig(Path(tmp) / "data", workers=args.workers, deployments=args.deployments,
                        principal="bench-soak") as rig:
        parent = rig.server.process.pid
        pids = sorted(loadgen.process_tree([parent]), key=lambda pid: pid != parent)  # the parent first
        print(f"cielo processes: parent {parent}, workers {[p for p in pids if p != parent]}", flush=True)
        plan = loadgen.Plan(url=rig.url, method="POST", headers=tuple(rig.headers.items()), body=rig.body,
                            paths=tuple(rig.paths), concurrency=args.clients, timeout_s=args.timeout, engine=engine)
        rss_idle = rss_mib(pids)

        warmup: dict[str, Any] | None = None
        if args.warmup > 0:
            warmup = loadgen.measure(plan, args.warmup, watch=[parent])
            print(f"warm-up {loadgen.describe(warmup)}", flush=True)
            time.sleep(SETTLE_S)
        rss_warm = rss_mib(pids)

        soak, samples = sample_during(lambda: loadgen.measure(plan, args.seconds, watch=[parent]), pids,
                                      args.sample_every)
        print(f"soak    {loadgen.describe(soak)}", flush=True)
        time.sleep(SETTLE_S)
        rss_after = rss_mib(pids)
        survivors = [pid for pid in pids if alive(pid)]
        now = loadgen.process_tree([parent]) if alive(parent) else []
        newcomers = [pid for pid in now if pid not in pids]
        log_text = rig.server.log_text()

    # ------------------------------------------------------------------------- report
    soak_errors = other_errors(soak)
    warmup_errors = other_errors(warmup) if warmup else {}
    total_other = sum(soak_errors.values()) + sum(warmup_errors.values())
    throttled = soak["statuses"].get("429", 0)
    ok = soak["ok"]
    base, after = sum(rss_warm.values()), sum(rss_after.values())
    growth = (after - base) / base * 100 if base else float("nan")
    log_problems = [line for line in log_text.splitlines()
                    if "Traceback" in line or " ERROR" in line or line.startswith("ERROR")]

    print()
    unanswered = sum(soak["socket_errors"].values())
    print(f"requests: {soak['requests']:,} answered in {soak['duration_s']:.1f} s ({soak['rps']:,.0f} req/s), "
          f"{unanswered:,} unanswered (socket errors); 2xx {ok:,}; "
          f"429 {throttled:,} ({throttled / max(1, soak['requests']) * 100:.2f}% of answers)")
    print(f"answers by status: {soak['statuses']}; socket errors: {soak['socket_errors'] or 'none'}")
    print(f"errors other than 429: soak {soak_errors or 'none'}; warm-up {warmup_errors or 'none'}")
    print(f"latency over all answers: p50 {soak['p50_ms']:.1f} ms, p99 {soak['p99_ms']:.1f} ms, "
          f"max {soak['max_ms']:.1f} ms; Cielo CPU {soak.get('target_cpu_util', 0) * 100:.0f}% of one core "
          f"({soak.get('target_cpu_ms_per_req', 0):.3f} ms/request)")
    print("RSS (MiB)   idle   after warm-up   after soak")
    for pid in pids:
        role = "parent" if pid == parent else "worker"
        print(f"  {role} {pid:<7} {rss_idle[pid]:7.1f} {rss_warm[pid]:13.1f} {rss_after[pid]:12.1f}")
    print(f"  total        {sum(rss_idle.values()):7.1f} {base:13.1f} {after:12.1f}   growth {growth:+.2f}% "
          "(after warm-up -> after soak)")
    if samples:
        print("  during the soak: " + "  ".join(f"{t:.0f}s {mib:.1f}" for t, mib in samples))
    print(f"server log: {len(log_problems)} error/traceback lines")

    checks = [
        ("errors other than 429 (warm-up + soak)", f"{total_other:,}", f"{TARGET_OTHER_ERRORS}",
              total_other <= TARGET_OTHER_ERRORS),
        ("RSS growth, after warm-up -> after soak", f"{growth:+.2f}%", f"< {TARGET_RSS_GROWTH_PCT:g}%",
              growth < TARGET_RSS_GROWTH_PCT),
        ("cielo processes still running", f"{len(survivors)} of {len(pids)}"
              + (f", new {newcomers}" if newcomers else ""), f"{len(pids)} of {len(pids)}",
              len(survivors) == len(pids) and not newcomers),
        ("successful answers", f"{ok:,}", "> 0", ok > 0),
    ]
    print("\n| check | measured | target | |")
    print("|---|---|---|---|")
    for name, value, target, met in checks:
        print(f"| {name} | {value} | {target} | {'met' if met else 'MISSED'} |")
    passed = all(met for *_, met in checks)
    print(f"\n(took {time.time() - started:.0f} s; load average before {load_before[0]:.2f}, "
          f"now {os.getloadavg()[0]:.2f})")

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps({
        "args": vars(args), "engine": engine, "cpus": os.cpu_count(), "cpu_model": cpu_model(),
        "load_average_before": load_before, "warmup": warmup, "soak": soak, "other_errors": total_other,
        "rss_mib": {"idle": rss_idle, "after_warmup": rss_warm, "after_soak": rss_after, "growth_pct": growth,
                    "samples": samples},
        "checks": [{"name": n, "measured": v, "target": t, "met": m} for n, v, t, m in checks],
        "passed": passed, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2))
    if not passed:
        kept = RESULTS / "soak-server.log"
        kept.write_text(log_text)
        for line in log_problems[:20]:
            print(f"  log: {line}")
        print(f"targets MISSED; the server log is kept in {kept.relative_to(REPO)}")
        sys.exit(1)
    print("all targets met")


if __name__ == "__main__":
    main()
