#!/usr/bin/env python3
"""A/B of the data plane's CPU per request: several source trees served side by side, measured alternately.

Each tree (a git worktree, say `git worktree add /tmp/wt-base <commit>`) gets its own real `cielo up --workers N`
through benchmarks/gateway_rig.py (null upstream, 100 capacity-1,000 deployments, a service principal's bearer
token), started with `PYTHONPATH=TREE/src:TREE/tests`. benchmarks/loadgen.py (wrk when installed) then drives
the same authenticated chat completions against each in turn, `--rounds` times (the order reversed every other
round), and prints each run's req/s and Cielo's CPU milliseconds per request, then the medians. On a machine
shared with other work, alternating short runs of the trees keeps the comparison fair where separate runs of
benchmarks/dataplane.py drift with the other load.

Usage:
    .venv/bin/python benchmarks/dataplane_ab.py /tmp/wt-base /tmp/wt-new '/tmp/wt-new|CIELO_ACCESS_LOG=false'
A tree may carry one environment variable for its server after `|`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

import loadgen
from gateway_rig import gateway_rig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", help="source trees (TREE or 'TREE|VAR=VALUE')")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deployments", type=int, default=100)
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {t: [] for t in args.trees}
    rps: dict[str, list[float]] = {t: [] for t in args.trees}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        rigs = []
        for i, spec in enumerate(args.trees):
            tree, _, extra = spec.partition("|")
            env = {"PYTHONPATH": f"{tree}/src:{tree}/tests"}
            if extra:
                name, _, value = extra.partition("=")
                env[name] = value
            rigs.append(stack.enter_context(gateway_rig(Path(tmp) / f"data-{i}", workers=args.workers,
                                                        deployments=args.deployments, server_env=env,
                                                        principal=f"bench-ab-{i}")))
        plans = [loadgen.Plan(url=r.url, method="POST", headers=tuple(r.headers.items()), body=r.body,
                              paths=tuple(r.paths), concurrency=args.concurrency,
                              engine=loadgen.resolve_engine("auto")) for r in rigs]
        for plan in plans:
            loadgen.measure(plan, 2)  # warm-up: connections, caches
        for k in range(args.rounds):
            order = list(range(len(rigs))) if k % 2 == 0 else list(reversed(range(len(rigs))))
            for i in order:
                r = loadgen.measure(plans[i], args.duration, watch=[rigs[i].server.process.pid])
                spec = args.trees[i]
                cpu[spec].append(r["target_cpu_ms_per_req"])
                rps[spec].append(r["rps"])
                others = {s: n for s, n in r["statuses"].items() if s != "200"}
                print(f"round {k} {spec:<40} {r['rps']:7.0f} req/s  CPU {r['target_cpu_ms_per_req']:.3f} ms/req"
                      f"{'  ' + str(others) if others else ''}", flush=True)
    print()
    for spec in args.trees:
        print(f"{spec:<40} median {statistics.median(cpu[spec]):.3f} CPU ms/req, {statistics.median(rps[spec]):,.0f} "
              f"req/s (runs: {' '.join(f'{x:.3f}' for x in cpu[spec])})")


if __name__ == "__main__":
    main()
