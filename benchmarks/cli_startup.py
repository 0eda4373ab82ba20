#!/usr/bin/env python3
"""CLI start-up: the wall time of short `cielo` commands, each a new Python process, as users and the
end-to-end tests run them.

Side by side in one run, interleaved (each round runs every command once, so a busy machine slows all alike):
  * `python -c pass` with the same interpreter (the floor no command can go under),
  * `cielo --version`,
  * `cielo group --help` (one command group's help: imports that group's module only),
  * `cielo account show` with an empty config directory (a fast local error: "Please run 'cielo login' ..."),
then `python -X importtime` of `cielo --version`: the modules whose own import took longest.
With --server it also starts a real `cielo up` (as the end-to-end tests do), signs in once, and adds
`cielo group list` and `cielo group list -o table` (a typical network command: one ARM GET, cached token).

`cielo` is the venv's installed script next to the interpreter (what a user runs), or `python -m
cielo.cli.main` with --module or where there is no script (what the end-to-end tests run). --pythonpath SRC runs
the `cielo` of another source tree (e.g. `git worktree add /tmp/before HEAD~3` then `--pythonpath
/tmp/before/src`) with the same interpreter and dependencies, to compare before and after in one run.

Every number is measured in this run; nothing is compared with a stored baseline. No server is needed.
Usage: .venv/bin/python benchmarks/cli_startup.py [--runs 10] [--top 15] [--module] [--pythonpath SRC] [--server]
Writes benchmarks/results/cli_startup.json (ignored by git).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "cli_startup.json"

# What could make `cielo` read another user's config or reach a server: none of it is wanted here.
_SCRUBBED = ("CIELO_CONFIG_DIR", "CIELO_ENDPOINT", "CIELO_CA_BUNDLE", "CIELO_DATA_DIR", "AZURE_CONFIG_DIR",
             "PYTHONPATH", "PYTHONSTARTUP", "PYTHONPROFILEIMPORTTIME", "BROWSER", "DISPLAY", "WAYLAND_DISPLAY")


def cielo_command(use_module: bool) -> list[str]:
    script = Path(sys.executable).parent / "cielo"
    if use_module or not script.exists():
        return [sys.executable, "-m", "cielo.cli.main"]
    # The script's own shebang names this venv's interpreter; naming it here keeps --pythonpath working the same.
    return [sys.executable, str(script)]


def environment(home: Path, pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update({"HOME": str(home), "CIELO_CONFIG_DIR": str(home / "cielo-config"), "NO_COLOR": "1"})
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


@contextlib.contextmanager
def signed_in_server(tmp: Path, cielo: list[str], env: dict[str, str]) -> Iterator[None]:
    """A real `cielo up`, and `env` changed so that `cielo` trusts it and is signed in as its admin."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.server import ADMIN_PASSWORD, ADMIN_USER, start_server

    server = start_server(tmp / "server-data")
    try:
        env.update(server.client_env())
        done = subprocess.run([*cielo, "login", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise SystemExit(f"cielo login failed: {done.stderr}")
        yield
    finally:
        server.stop()


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    # No timeout: with one, subprocess polls the child with sleeps of up to 50 ms, which would be measured too.
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start, done.returncode


def import_times(argv: list[str], env: dict[str, str]) -> tuple[list[tuple[str, int, int]], int]:
    """(module, self µs, cumulative µs) of one `-X importtime` run, slowest own import first; and the total µs."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    rows: list[tuple[str, int, int]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        rows.append((name.strip(), int(own), int(cumulative)))
    total = sum(own for _, own, _ in rows)
    return sorted(rows, key=lambda row: row[1], reverse=True), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs of each command; the median is reported")
    parser.add_argument("--top", type=int, default=15, help="modules to list from -X importtime")
    parser.add_argument("--module", action="store_true", help="run `python -m cielo.cli.main`, not the script")
    parser.add_argument("--pythonpath", default=None, help="run the cielo of this source tree (PYTHONPATH)")
    parser.add_argument("--server", action="store_true",
                        help="also time `cielo group list` (-o json and -o table) against a real `cielo up`")
    args = parser.parse_args()

    cielo = cielo_command(args.module)
    commands: dict[str, list[str]] = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "cielo --version": [*cielo, "--version"],
        "cielo group --help": [*cielo, "group", "--help"],
        "cielo account show (empty config)": [*cielo, "account", "show"],
    }
    if args.server:
        commands["cielo group list (server)"] = [*cielo, "group", "list"]
        commands["cielo group list -o table (server)"] = [*cielo, "group", "list", "-o", "table"]
    with tempfile.TemporaryDirectory(prefix="cielo-cli-startup-") as tmp, contextlib.ExitStack() as stack:
        env = environment(Path(tmp), args.pythonpath)
        local = dict(env)  # `account show` keeps its empty config directory
        if args.server:
            env["CIELO_CONFIG_DIR"] = str(Path(tmp) / "signed-in-config")
            stack.enter_context(signed_in_server(Path(tmp), cielo, env))
        envs = {name: env if "(server)" in name else local for name in commands}
        codes: dict[str, int] = {}
        for name, argv in commands.items():  # one untimed run each: byte-code caches written, files in the page cache
            codes[name] = run_once(argv, envs[name])[1]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                elapsed, code = run_once(argv, envs[name])
                times[name].append(elapsed)
                codes[name] = code
        modules, total_us = import_times([*cielo, "--version"], local)

    print(f"interpreter: {sys.executable} (Python {sys.version.split()[0]}), {os.cpu_count()} CPUs")
    print(f"cielo: {' '.join(cielo)}" + (f"  PYTHONPATH={args.pythonpath}" if args.pythonpath else ""))
    print(f"median wall time of {args.runs} runs (interleaved):")
    floor = statistics.median(times["python -c pass"])
    summary: dict[str, dict[str, float | int]] = {}
    for name, samples in times.items():
        median = statistics.median(samples)
        summary[name] = {"median_s": median, "min_s": min(samples), "max_s": max(samples), "exit_code": codes[name],
                         "over_python_s": median - floor}
        extra = "" if name == "python -c pass" else f"  (+{(median - floor) * 1000:.0f} ms over python)"
        print(f"  {name:<38} {median * 1000:7.1f} ms  min {min(samples) * 1000:6.1f}  max {max(samples) * 1000:6.1f}"
              f"  exit {codes[name]}{extra}")
    print(f"\n`-X importtime` of `cielo --version`: {len(modules)} modules, {total_us / 1000:.1f} ms of imports; "
          f"the {args.top} slowest (own time, then cumulative):")
    for name, own, cumulative in modules[:args.top]:
        print(f"  {own / 1000:7.1f} ms  {cumulative / 1000:7.1f} ms  {name}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "runs": args.runs, "cielo": cielo, "pythonpath": args.pythonpath, "commands": summary,
        "importtime_version": {"modules": len(modules), "total_ms": total_us / 1000,
                               "top": [{"module": n, "self_ms": s / 1000, "cumulative_ms": c / 1000}
                                       for n, s, c in modules[:args.top]]},
    }, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
