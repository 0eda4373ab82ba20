#!/usr/bin/env python3
"""A bounded, closed-loop HTTP load generator for loopback benchmarks.

Each of `--concurrency` keep-alive connections sends a request, waits for the whole answer and sends the
next, for `--duration` seconds (at most 600) or until about `--requests` answers, whichever comes first.

Two engines, one report:
  wrk     Debian's `wrk` (`apt-get install wrk`), driven by a Lua script written here that sets the
          method, headers and body, cycles through `--path` targets, counts answers by status and
          stops after `--requests`. One wrk thread drives tens of thousands of requests per second, so
          the generator is seldom what limits a run. Chosen by default when `wrk` is on PATH.
  python  aiohttp (on uvloop when importable): the fallback. It tops out at a few thousand requests
          per second per core, so it suits slower targets; on a small machine it takes CPU from the
          target. TLS certificates are not checked unless `--cacert` names a bundle (wrk never checks).

The report: requests per second; latency p50/p90/p99/p99.9/max in ms over all answers; answers by
status; socket errors (connect, read, write, timeout); with `--watch-pid`, the CPU seconds the target
process and its descendants used, as a share of one core and in ms per request. `--repeat N` reports
the median of N runs; `--json FILE` appends the whole result as one line.

  loadgen.py http://127.0.0.1:8901/v1/chat/completions -c 16 -d 10 \\
      -H 'Authorization: Bearer TOKEN' --body '{"messages":[{"role":"user","content":"hi"}]}'
  loadgen.py https://127.0.0.1:8443/ --path /a --path /b -c 32 -d 5 --repeat 3 --json out.jsonl

Targets must be loopback addresses unless `--allow-remote` is given.

Used as a module (benchmarks/dataplane.py does): `measure(Plan(...), seconds)` returns one run's
result as a dict, and `summarize(runs)` their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_SECONDS = 600.0
LATENCY_KEYS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "mean_ms", "max_ms")
RESULT_MARK = "LOADGEN-RESULT "
THREAD_DONE_MARK = "LOADGEN-THREAD-DONE"


@dataclass(frozen=True)
class Plan:
    """What to send, and how hard."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    paths: tuple[str, ...] = ()  # request targets (path and query) taken in turn; empty: the URL's own
    concurrency: int = 16
    threads: int = 1  # wrk threads
    timeout_s: float = 10.0
    cpu: str | None = None  # pin the generator to these CPUs (a taskset list such as "1")
    engine: str = "auto"
    cacert: str | None = None  # the python engine checks TLS against this bundle when given

    def with_content_type(self) -> Plan:
        """A body without a Content-Type header is sent as JSON."""
        if self.body is None or any(name.lower() == "content-type" for name, _ in self.headers):
            return self
        return replace(self, headers=(*self.headers, ("Content-Type", "application/json")))


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def resolve_engine(engine: str) -> str:
    if engine == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return engine


# ----------------------------------------------------------------------------- the target's CPU time
def process_tree(roots: Iterable[int]) -> list[int]:
    """The given processes and all their descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, ()))
    return sorted(found)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes (those that have exited count nothing)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


# ----------------------------------------------------------------------------- wrk engine
def lua_string(text: str) -> str:
    """A Lua string literal: printable ASCII as is, every other byte as a decimal escape."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def wrk_script(plan: Plan, per_thread_limit: int) -> str:
    lines = [f"wrk.method = {lua_string(plan.method)}"]
    if plan.body is not None:
        lines.append(f"wrk.body = {lua_string(plan.body)}")
    lines += [f"wrk.headers[{lua_string(name)}] = {lua_string(value)}" for name, value in plan.headers]
    lines += [
        f"local limit = {per_thread_limit}",
        "local answered = 0",
        "local threads = {}",
        "statuses = {}",
        "function setup(thread) table.insert(threads, thread) end",
        "function response(status, headers, body)",
        "  local key = tostring(status)",
        "  statuses[key] = (statuses[key] or 0) + 1",
        "  answered = answered + 1",
        "  if answered == limit then",
        f'    io.write("{THREAD_DONE_MARK}\\n"); io.flush()',
        "    wrk.thread:stop()",
        "  end",
        "end",
    ]
    if plan.paths:
        # A request() function makes wrk build every request anew: only worth it when the target changes.
        lines += [
            "local paths = {" + ", ".join(lua_string(path) for path in plan.paths) + "}",
            "local turn = 0",
            "function request()",
            "  turn = turn % #paths + 1",
            "  return wrk.format(nil, paths[turn])",
            "end",
        ]
    lines += [
        "function done(summary, latency, requests)",
        "  local merged = {}",
        "  for _, thread in ipairs(threads) do",
        '    for key, count in pairs(thread:get("statuses") or {}) do merged[key] = (merged[key] or 0) + count end',
        "  end",
        "  local parts = {}",
        "  for key, count in pairs(merged) do table.insert(parts, string.format('\"%s\":%d', key, count)) end",
        "  local e = summary.errors",
        f'  io.write("{RESULT_MARK}", string.format(',
        "    '{\"duration_us\":%d,\"requests\":%d,\"errors\":{\"connect\":%d,\"read\":%d,\"write\":%d,"
        "\"timeout\":%d},' ..",
        "    '\"latency_us\":{\"p50\":%d,\"p90\":%d,\"p99\":%d,\"p999\":%d,\"mean\":%.1f,\"max\":%d},"
        "\"statuses\":{%s}}\\n',",
        "    summary.duration, summary.requests, e.connect, e.read, e.write, e.timeout,",
        "    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),",
        "    latency.mean, latency.max, table.concat(parts, \",\")))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(plan: Plan, seconds: float, limit: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed (apt-get install wrk); use --engine python")
    per_thread = math.ceil(limit / plan.threads) if limit else 0
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(plan, per_thread))
    command = [wrk, "--threads", str(plan.threads), "--connections", str(plan.concurrency),
               "--duration", f"{max(1, math.ceil(seconds))}s", "--timeout", f"{max(1, math.ceil(plan.timeout_s))}s",
               "--script", script.name, plan.url]
    if plan.cpu is not None:
        command = ["taskset", "-c", plan.cpu, *command]
    output: list[str] = []
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The bound: whatever happens, wrk is killed a minute after its run should have ended.
        watchdog = threading.Timer(seconds + 60, process.kill)
        watchdog.start()
        try:
            finished_threads = 0
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line)
                if line.startswith(THREAD_DONE_MARK):
                    finished_threads += 1
                    # wrk's main thread sleeps out --duration even when every thread has stopped; SIGINT
                    # makes it report at once, with the real duration.
                    if finished_threads == plan.threads:
                        process.send_signal(signal.SIGINT)
            assert process.stderr is not None
            errors = process.stderr.read()
            process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
    finally:
        os.unlink(script.name)
    line = next((line for line in output if line.startswith(RESULT_MARK)), None)
    if line is None:
        sys.exit(f"wrk failed (exit status {process.returncode}):\n{''.join(output)}{errors}")
    raw = json.loads(line[len(RESULT_MARK):])
    duration = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    return {
        "engine": "wrk",
        "duration_s": duration,
        "requests": raw["requests"],
        "rps": raw["requests"] / duration if duration else 0.0,
        **{f"{key}_ms": latency[key] / 1000 for key in ("p50", "p90", "p99", "p999", "mean", "max")},
        "statuses": dict(sorted(raw["statuses"].items())),
        "socket_errors": {kind: count for kind, count in raw["errors"].items() if count},
    }


# ----------------------------------------------------------------------------- python engine
def nearest_rank(ordered: Sequence[float], percent: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))]


async def _python_load(plan: Plan, seconds: float, limit: int) -> tuple[list[float], Counter[str], Counter[str],
                                                                        float]:
    import aiohttp

    parts = urlsplit(plan.url)
    targets = [f"{parts.scheme}://{parts.netloc}{path}" for path in plan.paths] or [plan.url]
    tls: ssl.SSLContext | bool = False
    if parts.scheme == "https" and plan.cacert:
        tls = ssl.create_default_context(cafile=plan.cacert)
    headers = dict(plan.headers)
    data = plan.body.encode() if plan.body is not None else None
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    started = 0
    connector = aiohttp.TCPConnector(limit=plan.concurrency, ssl=tls)
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     skip_auto_headers=("User-Agent",)) as session:
        begin = time.perf_counter()
        end = begin + seconds

        async def client(index: int) -> None:
            nonlocal started
            turn = index
            clock = time.perf_counter
            while clock() < end and (not limit or started < limit):
                started += 1
                target = targets[turn % len(targets)]
                turn += 1
                sent = clock()
                try:
                    async with session.request(plan.method, target, data=data, headers=headers) as response:
                        await response.read()
                    latencies.append(clock() - sent)
                    statuses[str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError, OSError) as error:
                    errors["timeout" if isinstance(error, TimeoutError) else type(error).__name__] += 1

        await asyncio.gather(*(client(i) for i in range(plan.concurrency)))
        elapsed = time.perf_counter() - begin
    return latencies, statuses, errors, elapsed


def run_python(plan: Plan, seconds: float, limit: int) -> dict[str, Any]:
    try:
        import aiohttp  # noqa: F401  (imported here only to fail early with a clear message)
    except ImportError:
        sys.exit("the python engine needs aiohttp (pip install aiohttp)")
    if plan.cpu is not None:
        os.sched_setaffinity(0, {int(cpu) for cpu in plan.cpu.split(",")})
    try:
        import uvloop

        latencies, statuses, errors, elapsed = uvloop.run(_python_load(plan, seconds, limit))
    except ImportError:
        latencies, statuses, errors, elapsed = asyncio.run(_python_load(plan, seconds, limit))
    latencies.sort()
    ms = [value * 1000 for value in latencies]
    return {
        "engine": "python-aiohttp",
        "duration_s": elapsed,
        "requests": len(ms),
        "rps": len(ms) / elapsed if elapsed else 0.0,
        "p50_ms": nearest_rank(ms, 50), "p90_ms": nearest_rank(ms, 90), "p99_ms": nearest_rank(ms, 99),
        "p999_ms": nearest_rank(ms, 99.9), "mean_ms": statistics.fmean(ms) if ms else math.nan,
        "max_ms": ms[-1] if ms else math.nan,
        "statuses": dict(sorted(statuses.items())),
        "socket_errors": dict(errors),
    }


# ----------------------------------------------------------------------------- runs and their summary
def measure(plan: Plan, seconds: float, *, limit: int = 0, watch: Sequence[int] = ()) -> dict[str, Any]:
    """One run of `plan` for `seconds` (or about `limit` requests); with `watch`, the target's CPU too."""
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"a run lasts more than 0 and at most {MAX_SECONDS:g} seconds")
    plan = plan.with_content_type()
    engine = resolve_engine(plan.engine)
    watched = process_tree(watch) if watch else []
    cpu_before = cpu_seconds(watched)
    result = run_wrk(plan, seconds, limit) if engine == "wrk" else run_python(plan, seconds, limit)
    if watch:
        used = cpu_seconds(process_tree(watch)) - cpu_before
        result["target_cpu_s"] = used
        result["target_cpu_util"] = used / result["duration_s"] if result["duration_s"] else 0.0
        result["target_cpu_ms_per_req"] = used * 1000 / result["requests"] if result["requests"] else 0.0
    result["ok"] = sum(count for status, count in result["statuses"].items() if status.startswith("2"))
    result["non2xx"] = result["requests"] - result["ok"]
    return result


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of each rate and latency over the runs (the worst max), and every count summed."""
    keys = ["rps", *LATENCY_KEYS]
    if "target_cpu_s" in runs[0]:
        keys += ["target_cpu_util", "target_cpu_ms_per_req"]
    median: dict[str, Any] = {key: statistics.median(run[key] for run in runs) for key in keys}
    median["max_ms"] = max(run["max_ms"] for run in runs)
    median["requests"] = sum(run["requests"] for run in runs)
    statuses: Counter[str] = Counter()
    socket_errors: Counter[str] = Counter()
    for run in runs:
        statuses.update(run["statuses"])
        socket_errors.update(run["socket_errors"])
    rates = [run["rps"] for run in runs]
    return {"engine": runs[0]["engine"], "runs": len(runs), "median": median,
            "rps_spread_pct": (max(rates) - min(rates)) / median["rps"] * 100 if median["rps"] else 0.0,
            "statuses_total": dict(sorted(statuses.items())), "socket_errors_total": dict(socket_errors)}


def describe(result: dict[str, Any]) -> str:
    text = (f"{result['rps']:10.1f} req/s  p50 {result['p50_ms']:7.2f}  p90 {result['p90_ms']:7.2f}  "
            f"p99 {result['p99_ms']:7.2f}  max {result['max_ms']:8.2f} ms  statuses {result['statuses']}")
    if result.get("socket_errors"):
        text += f"  socket errors {result['socket_errors']}"
    if "target_cpu_s" in result:
        text += f"  target CPU {result['target_cpu_util'] * 100:.0f}% ({result['target_cpu_ms_per_req']:.3f} ms/req)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the target; with --path, its scheme, host and port")
    parser.add_argument("-X", "--method", help="default: POST when a body is given, else GET")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--body", help="the request body (JSON unless a Content-Type header says otherwise)")
    parser.add_argument("--body-file", help="read the request body from this file")
    parser.add_argument("--path", action="append", default=[],
                        help="a request target (path and query) on the URL's host; repeat to take several in turn")
    parser.add_argument("-c", "--concurrency", type=int, default=16, help="connections, one request in flight each")
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="seconds per run (at most 600)")
    parser.add_argument("-n", "--requests", type=int, default=0, help="stop a run after about this many requests")
    parser.add_argument("-t", "--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--engine", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--cpu", help="pin the generator to these CPUs (a taskset list, e.g. 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as timed out")
    parser.add_argument("--cacert", help="python engine: check the target's TLS certificate against this bundle")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unrecorded load before the runs")
    parser.add_argument("--repeat", type=int, default=1, help="runs (1-20); the median of each figure is reported")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    parser.add_argument("--watch-pid", type=int, action="append", default=[],
                        help="report the CPU time of this process and its descendants (repeatable)")
    parser.add_argument("--label", default="", help="a note stored with the --json result")
    parser.add_argument("--json", help="append the result to this file as one JSON line")
    parser.add_argument("--allow-remote", action="store_true", help="allow a target that is not a loopback address")
    args = parser.parse_args()

    if not args.allow_remote and not is_loopback(args.url):
        sys.exit(f"refusing {args.url}: not a loopback address (--allow-remote for a test host of your own)")
    if not 0 < args.duration <= MAX_SECONDS or not 0 <= args.warmup <= MAX_SECONDS:
        sys.exit("--duration must be more than 0 and --warmup at least 0, both at most 600 seconds")
    if not 1 <= args.repeat <= 20:
        sys.exit("--repeat must be from 1 to 20")
    body = Path(args.body_file).read_text() if args.body_file else args.body
    headers = []
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon:
            sys.exit(f"a header is 'Name: value', not {header!r}")
        headers.append((name.strip(), value.strip()))
    plan = Plan(url=args.url, method=args.method or ("POST" if body is not None else "GET"), headers=tuple(headers),
                body=body, paths=tuple(args.path), concurrency=args.concurrency, threads=args.threads,
                timeout_s=args.timeout, cpu=args.cpu, engine=resolve_engine(args.engine), cacert=args.cacert)

    if args.warmup > 0:
        print(f"warm-up   {describe(measure(plan, args.warmup))}", file=sys.stderr, flush=True)
    runs = []
    for index in range(args.repeat):
        if index and args.pause > 0:
            time.sleep(args.pause)
        runs.append(measure(plan, args.duration, limit=args.requests, watch=args.watch_pid))
        print(f"run {index + 1}/{args.repeat} {describe(runs[-1])}", flush=True)
    summary = summarize(runs)
    median = summary["median"]
    line = (f"median of {args.repeat}: {median['rps']:.1f} req/s  p50 {median['p50_ms']:.2f}  "
            f"p90 {median['p90_ms']:.2f}  p99 {median['p99_ms']:.2f} ms  "
            f"(req/s spread {summary['rps_spread_pct']:.1f}%)  statuses {summary['statuses_total']}")
    if summary["socket_errors_total"]:
        line += f"  socket errors {summary['socket_errors_total']}"
    if "target_cpu_util" in median:
        line += f"  target CPU {median['target_cpu_util'] * 100:.0f}% ({median['target_cpu_ms_per_req']:.3f} ms/req)"
    print(line, flush=True)
    if args.json:
        record = {"label": args.label, "url": args.url, "paths": args.path, "method": plan.method,
                  "concurrency": args.concurrency, "duration_s": args.duration, "requests_cap": args.requests,
                  "generator_cpu": args.cpu, "repeat": args.repeat, **summary, "all_runs": runs,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(args.json, "a") as out:
            out.write(json.dumps(record) + "\n")
    succeeded = any(status.startswith("2") for status in summary["statuses_total"])
    sys.exit(0 if succeeded else 2)


if __name__ == "__main__":
    main()
