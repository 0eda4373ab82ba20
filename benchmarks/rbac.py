#!/usr/bin/env python3
"""RBAC decision latency: `RbacIndex.authorize` with 10, 10,000 and 1,000,000 role assignments.

Synthetic tenant: subscriptions x resource groups x Cognitive Services accounts; users in groups;
assignments at subscription (5%), resource-group (25%) and account (70%) scope, 10% of them to
groups, with a weighted mix of the built-in roles. Queries ask at a deployment below an account
(5 scope levels): half are built to be allowed (a principal, or a member of a group, asking for an
action its role grants, somewhere below the assignment), half to be denied (an action the role lacks,
such as a data action for Owner, or a principal with nothing on that scope chain).

Each size runs against three role catalogues (`--catalogue`): `ten`, an index that knows only the ten
built-ins Cielo shipped before it vendored Azure's catalogue; `full`, the whole catalogue (~930 roles) with the
same assignments and queries; and `mixed`, the whole catalogue with one assignment in five drawn from any of its
roles (Storage, Key Vault, Machine Learning... roles whose wildcards the chain walk meets too). Then, per size,
`ten` and `full` indexes built from one tenant answer the same questions interleaved in chunks of alternating
order, so both live through the same load: the A/B that sequential runs on a shared machine cannot give
(`--no-paired` skips it). The start-up cost
of the catalogue (import, JSON load, compiling every role) is measured in a fresh interpreter.

In the same run, a naive evaluator that scans every assignment answers the same queries (time-boxed,
since at 1M assignments it manages a handful per second); both must agree on every answer.
Every number is measured in this run. Usage:
    .venv/bin/python benchmarks/rbac.py [--sizes 10,10000,1000000] [--queries 200000] [--naive-budget-s 3]
                                        [--catalogue ten,full,mixed]
Writes benchmarks/results/rbac.json (ignored by git).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cielo.rbac import (  # noqa: E402
    BUILTIN_ROLES,
    COGNITIVE_SERVICES_CONTRIBUTOR,
    COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR,
    COGNITIVE_SERVICES_OPENAI_USER,
    COGNITIVE_SERVICES_USAGES_READER,
    COGNITIVE_SERVICES_USER,
    CONTRIBUTOR,
    OWNER,
    RBAC_ADMINISTRATOR,
    READER,
    USER_ACCESS_ADMINISTRATOR,
    Principal,
    RbacIndex,
    RoleAssignment,
    RoleDefinition,
    RolePermissions,
    Scope,
    normalize_action,
    parse_scope,
)
from cielo.rbac import engine as rbac_engine  # noqa: E402

CS = "Microsoft.CognitiveServices/accounts"
CHAT = f"{CS}/OpenAI/deployments/chat/completions/action"
# role, weight, an action it grants, an action it lacks; (action, is_data_action)
ROLE_MIX: list[tuple[RoleDefinition, int, tuple[str, bool], tuple[str, bool]]] = [
    (READER, 25, (f"{CS}/deployments/read", False), (f"{CS}/listKeys/action", False)),
    (COGNITIVE_SERVICES_OPENAI_USER, 30, (CHAT, True), (f"{CS}/listKeys/action", False)),
    (COGNITIVE_SERVICES_USER, 10, (CHAT, True), (f"{CS}/write", False)),
    (CONTRIBUTOR, 10, (f"{CS}/write", False), ("Microsoft.Authorization/roleAssignments/write", False)),
    (COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR, 8, (f"{CS}/OpenAI/fine-tunes/write", True), (f"{CS}/write", False)),
    (OWNER, 5, ("Microsoft.Authorization/roleAssignments/write", False), (CHAT, True)),
    (USER_ACCESS_ADMINISTRATOR, 3, ("Microsoft.Authorization/roleAssignments/write", False), (CHAT, True)),
    (COGNITIVE_SERVICES_CONTRIBUTOR, 6, (f"{CS}/listKeys/action", False), (CHAT, True)),
    (COGNITIVE_SERVICES_USAGES_READER, 3, ("Microsoft.CognitiveServices/locations/usages/read", False), (CHAT, True)),
]
ROLES_BY_ID = {role.id: (role, grant, lack) for role, _, grant, lack in ROLE_MIX}
# The built-ins Cielo shipped before the catalogue: the `ten` run's index knows only these.
TEN = (OWNER, CONTRIBUTOR, READER, USER_ACCESS_ADMINISTRATOR, RBAC_ADMINISTRATOR, COGNITIVE_SERVICES_USER,
       COGNITIVE_SERVICES_CONTRIBUTOR, COGNITIVE_SERVICES_OPENAI_USER, COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR,
       COGNITIVE_SERVICES_USAGES_READER)
MIXED_SHARE = 0.20  # `mixed`: the share of assignments that take any role of the catalogue
STARTUP = """
import time
t0 = time.perf_counter()
import cielo.rbac
from cielo.rbac import engine, roles
t1 = time.perf_counter()
roles._load_catalogue()
t2 = time.perf_counter()
cielo.rbac.RbacIndex()
t3 = time.perf_counter()
for role in engine._builtin_roles()[0].values():
    role.compile()
t4 = time.perf_counter()
print(len(cielo.rbac.BUILTIN_ROLES), (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
"""


def measure_startup(repeats: int = 5) -> dict[str, float]:
    """The catalogue's cost at start-up, median of `repeats` fresh interpreters: importing `cielo.rbac` (the
    package, which loads the catalogue), loading the catalogue again on its own (JSON to RoleDefinitions), the
    first index (built-ins compile when first assigned), and compiling all of them (were every role assigned)."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", STARTUP], check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout.split()
        runs.append([float(v) for v in out])
    runs.sort(key=lambda r: r[1])
    roles, import_ms, load_ms, index_ms, compile_ms = runs[len(runs) // 2]
    return {"roles": roles, "import_ms": import_ms, "catalogue_load_ms": load_ms, "first_index_ms": index_ms,
            "compile_all_ms": compile_ms}


def rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@dataclass
class Tenant:
    assignments: list[RoleAssignment]
    accounts_by_scope: dict[str, list[str]]  # subscription / rg / account path -> accounts within it
    users: list[str]
    members: dict[str, list[str]]  # group -> member users
    principals: dict[str, Principal]  # user -> Principal with its (transitive) groups
    all_accounts: list[str]


def guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_tenant(n: int, rng: random.Random, mixed: bool = False) -> Tenant:
    n_subs = max(1, n // 5000)
    rgs_per_sub = 25 if n >= 1000 else 2
    accounts_per_rg = 10 if n >= 1000 else 2
    n_users = max(4, n // 4)
    n_groups = max(2, n // 100)
    users = [guid(rng) for _ in range(n_users)]
    groups = [guid(rng) for _ in range(n_groups)]
    members: dict[str, list[str]] = {g: [] for g in groups}
    user_groups: dict[str, set[str]] = {}
    for user in users:
        mine = set(rng.sample(groups, k=min(len(groups), rng.choice((0, 1, 1, 2, 3)))))
        user_groups[user] = mine
        for g in mine:
            members[g].append(user)
    for g in groups:  # every group has a member, so group grants can be asked about
        if not members[g]:
            user = rng.choice(users)
            members[g].append(user)
            user_groups[user].add(g)
    principals = {u: Principal(u, group_ids=frozenset(user_groups[u])) for u in users}

    subs: list[str] = []
    rgs: list[str] = []
    accounts_by_scope: dict[str, list[str]] = {}
    all_accounts: list[str] = []
    for _ in range(n_subs):
        sub = f"/subscriptions/{guid(rng)}"
        subs.append(sub)
        accounts_by_scope[sub] = []
        for r in range(rgs_per_sub):
            rg = f"{sub}/resourceGroups/rg-{r:03d}"
            rgs.append(rg)
            accounts_by_scope[rg] = []
            for a in range(accounts_per_rg):
                account = f"{rg}/providers/Microsoft.CognitiveServices/accounts/acct-{r:03d}-{a:02d}"
                accounts_by_scope[account] = [account]
                accounts_by_scope[rg].append(account)
                accounts_by_scope[sub].append(account)
                all_accounts.append(account)

    weights = [w for _, w, _, _ in ROLE_MIX]
    roles = [r for r, _, _, _ in ROLE_MIX]
    assignments: list[RoleAssignment] = []
    drawn: set[tuple[str, str, str]] = set()  # Azure refuses the same principal, role and scope twice
    while len(assignments) < n:
        level = rng.random()
        scope = rng.choice(subs) if level < 0.05 else rng.choice(rgs) if level < 0.30 else rng.choice(all_accounts)
        is_group = rng.random() < 0.10
        principal = rng.choice(groups) if is_group else rng.choice(users)
        role = rng.choices(roles, weights)[0]
        if mixed and rng.random() < MIXED_SHARE:
            role = rng.choice(BUILTIN_ROLES)
        if (scope, principal, role.id) in drawn:
            continue
        drawn.add((scope, principal, role.id))
        assignments.append(RoleAssignment(guid(rng), scope, role.id, principal, "Group" if is_group else "User"))
    return Tenant(assignments, accounts_by_scope, users, members, principals, all_accounts)


Query = tuple[Principal, str, str, bool]  # principal, action, scope, data_action
ParsedQuery = tuple[Principal, str, Scope, bool]


def make_queries(
    tenant: Tenant, stored: list[RoleAssignment], index: RbacIndex, count: int, rng: random.Random
) -> list[Query]:
    """Even i: an action the drawn assignment's role grants, below its scope (allowed by construction).
    Odd i: an action that role lacks, redrawn until no other role of the principal grants it either;
    one in four of those asks for a principal with, most likely, nothing on that chain."""
    queries: list[Query] = []
    for i in range(count):
        for _ in range(50):
            if i % 8 == 7:
                user = rng.choice(tenant.users)
                deployment = f"{rng.choice(tenant.all_accounts)}/deployments/d{rng.randrange(4)}"
                action, data = rng.choice([(CHAT, True), (f"{CS}/write", False)])
                query = (tenant.principals[user], action, deployment, data)
            else:
                assignment = rng.choice(stored)
                while assignment.role_definition_id not in ROLES_BY_ID:  # `mixed`: ask about the known roles
                    assignment = rng.choice(stored)
                _, grant, lack = ROLES_BY_ID[assignment.role_definition_id]
                if assignment.principal_type == "Group":
                    user = rng.choice(tenant.members[assignment.principal_id])
                else:
                    user = assignment.principal_id
                account = rng.choice(tenant.accounts_by_scope[assignment.scope])
                action, data = grant if i % 2 == 0 else lack
                query = (tenant.principals[user], action, f"{account}/deployments/d{rng.randrange(4)}", data)
            if i % 2 == 0 or not index.authorize(query[0], query[1], query[2], data_action=query[3]).allowed:
                break
        queries.append(query)
    return queries


class NaiveRbac:
    """The baseline: scan every assignment, checking principal, scope prefix and role permissions."""

    def __init__(self, assignments: list[RoleAssignment], roles: Sequence[RoleDefinition]) -> None:
        perms = {role.id: RolePermissions([(p.actions, p.not_actions, p.data_actions, p.not_data_actions, p.condition)
                                           for p in role.permissions], strict=False) for role in roles}
        self.rows = [(a.principal_id, parse_scope(a.scope).key, perms[a.role_definition_id], a.condition is None)
                     for a in assignments]

    def authorize(self, principal: Principal, action: str, scope: str, *, data_action: bool) -> bool:
        key = parse_scope(scope).key
        wanted = normalize_action(action)
        members = principal.lookup_set
        allowed = False
        for pid, akey, perms, unconditional in self.rows:
            if (pid in members and (akey == "/" or key == akey or key.startswith(akey + "/"))
                    and unconditional and perms.allows(wanted, data_action)):
                allowed = True
        return allowed


def percentile(sorted_ns: list[int], p: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(p * len(sorted_ns)))] / 1000


def measure_engine(index: RbacIndex, queries: Sequence[tuple[Principal, str, str | Scope, bool]]) -> dict[str, float]:
    for principal, action, scope, data in queries[:2000]:  # warm the caches
        index.authorize(principal, action, scope, data_action=data)
    timings = array("q", bytes(8 * len(queries)))
    allowed = 0
    clock = time.perf_counter_ns
    cpu_start = time.process_time()
    start = clock()
    for i, (principal, action, scope, data) in enumerate(queries):
        t0 = clock()
        decision = index.authorize(principal, action, scope, data_action=data)
        timings[i] = clock() - t0
        allowed += decision.allowed
    wall = (clock() - start) / 1e9
    cpu = time.process_time() - cpu_start
    ordered = sorted(timings)
    return {
        "decisions_per_s": len(queries) / wall,
        "cpu_us_per_decision": cpu / len(queries) * 1e6,
        "p50_us": percentile(ordered, 0.50),
        "p99_us": percentile(ordered, 0.99),
        "p999_us": percentile(ordered, 0.999),
        "max_us": ordered[-1] / 1000,
        "allowed_pct": 100 * allowed / len(queries),
    }


def measure_naive(naive: NaiveRbac, index: RbacIndex, queries: list[Query], budget_s: float) -> dict[str, float]:
    timings: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(budget_s * 1e9)
    for principal, action, scope, data in queries:
        t0 = clock()
        answer = naive.authorize(principal, action, scope, data_action=data)
        timings.append(clock() - t0)
        if answer != index.authorize(principal, action, scope, data_action=data).allowed:
            raise AssertionError(f"naive and index disagree on {principal.object_id} {action} {scope}")
        if clock() > deadline:
            break
    ordered = sorted(timings)
    total = sum(timings) / 1e9
    return {"decisions_per_s": len(timings) / total, "p50_us": percentile(ordered, 0.50),
            "p99_us": percentile(ordered, 0.99), "queries": len(timings)}


def cold_start() -> None:
    """Forget what an earlier run left in this process (parsed scopes, normalised actions, compiled roles and their
    memos), so that the same questions asked again do not find their answers cached: each run starts cold."""
    parse_scope.cache_clear()
    normalize_action.cache_clear()
    rbac_engine._builtin_roles.cache_clear()
    gc.collect()


def run_size(n: int, queries_count: int, naive_budget_s: float, seed: int, catalogue: str) -> dict[str, object]:
    cold_start()
    rng = random.Random(seed + n)  # the same seed for every catalogue: `ten` and `full` get the same questions
    tenant = make_tenant(n, rng, mixed=catalogue == "mixed")
    gc.collect()
    rss_before = rss_mb()
    t0, cpu0 = time.perf_counter(), time.process_time()
    index = RbacIndex(builtin_roles=TEN if catalogue == "ten" else None)
    index.add_assignments(tenant.assignments)
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    gc.collect()
    rss_after = rss_mb()
    stored = index.list_assignments()
    queries = make_queries(tenant, stored, index, queries_count, rng)
    # The same questions with the scope parsed beforehand (a router may parse once per request): what
    # is left is the index's own cost, without the parse cache's misses on a large scope universe.
    parsed: list[ParsedQuery] = [(p, a, parse_scope(sc), d) for p, a, sc, d in queries[: min(len(queries), 50_000)]]
    gc.freeze()  # the index and the prepared queries are long-lived: keep the collector off them
    engine = measure_engine(index, queries)
    preparsed = measure_engine(index, parsed)
    result: dict[str, object] = {
        "catalogue": catalogue,
        "roles": len(index.role_definitions()),
        "assignments": len(index),
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "index_rss_mb": (rss_after - rss_before) if rss_before is not None and rss_after is not None else None,
        "engine": engine,
        "engine_preparsed_scope": preparsed,
    }
    if naive_budget_s > 0:
        naive = NaiveRbac(stored, index.role_definitions())
        result["naive"] = measure_naive(naive, index, queries, naive_budget_s)
        del naive
    del index, stored, tenant, queries
    gc.unfreeze()
    gc.collect()
    return result


PAIR_CHUNK = 2_000


def measure_paired(indexes: dict[str, RbacIndex],
                   queries: Sequence[tuple[Principal, str, str | Scope, bool]]) -> dict[str, dict[str, float]]:
    """The same queries against each index, interleaved in chunks whose order alternates, so that both live
    through the same load on a shared machine (an A/B that sequential runs cannot give). Every answer must agree."""
    names = list(indexes)
    for index in indexes.values():
        for principal, action, scope, data in queries[:PAIR_CHUNK]:
            index.authorize(principal, action, scope, data_action=data)
    timings = {name: array("q") for name in names}
    cpu = dict.fromkeys(names, 0.0)
    clock = time.perf_counter_ns
    for c, start in enumerate(range(0, len(queries), PAIR_CHUNK)):
        chunk = queries[start:start + PAIR_CHUNK]
        answers: dict[str, list[bool]] = {}
        for name in names if c % 2 == 0 else reversed(names):
            index, out, mine = indexes[name], timings[name], []
            cpu0 = time.process_time()
            for principal, action, scope, data in chunk:
                t0 = clock()
                decision = index.authorize(principal, action, scope, data_action=data)
                out.append(clock() - t0)
                mine.append(decision.allowed)
            cpu[name] += time.process_time() - cpu0
            answers[name] = mine
        if len({tuple(a) for a in answers.values()}) != 1:
            raise AssertionError("the catalogues disagree on an answer")
    result = {}
    for name in names:
        ordered = sorted(timings[name])
        result[name] = {"decisions_per_s": len(ordered) / (sum(ordered) / 1e9),
                        "cpu_us_per_decision": cpu[name] / len(ordered) * 1e6,
                        "p50_us": percentile(ordered, 0.50), "p99_us": percentile(ordered, 0.99),
                        "p999_us": percentile(ordered, 0.999)}
    return result


def run_pair(n: int, queries_count: int, seed: int) -> dict[str, object]:
    """`ten` and `full` on one tenant, the same questions, interleaved (see `measure_paired`)."""
    cold_start()
    rng = random.Random(seed + n)
    tenant = make_tenant(n, rng)
    indexes = {"ten": RbacIndex(builtin_roles=TEN), "full": RbacIndex()}
    for index in indexes.values():
        index.add_assignments(tenant.assignments)
    stored = indexes["full"].list_assignments()
    queries = make_queries(tenant, stored, indexes["full"], queries_count, rng)
    parsed: list[ParsedQuery] = [(p, a, parse_scope(sc), d) for p, a, sc, d in queries[: min(len(queries), 50_000)]]
    gc.freeze()
    result: dict[str, object] = {"assignments": n, "engine": measure_paired(indexes, queries),
                                 "engine_preparsed_scope": measure_paired(indexes, parsed)}
    del indexes, stored, tenant, queries, parsed
    gc.unfreeze()
    gc.collect()
    return result


def fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,10000,1000000", help="comma-separated assignment counts")
    parser.add_argument("--queries", type=int, default=200_000, help="authorize() calls measured per size")
    parser.add_argument("--naive-budget-s", type=float, default=3.0, help="time box of the naive baseline per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--catalogue", default="ten,full,mixed",
                        help="which role catalogues to run each size against: ten, full, mixed (see above)")
    parser.add_argument("--no-paired", dest="paired", action="store_false",
                        help="skip the interleaved ten-vs-full A/B that follows the main runs")
    args = parser.parse_args()
    catalogues = [c for c in args.catalogue.split(",") if c]
    if not set(catalogues) <= {"ten", "full", "mixed"}:
        parser.error("--catalogue takes ten, full and/or mixed")
    startup = measure_startup()
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        for catalogue in catalogues:
            print(f"... {n:,} assignments, catalogue {catalogue}", file=sys.stderr, flush=True)
            results.append(run_size(n, args.queries, args.naive_budget_s, args.seed, catalogue))
    pairs = []
    for n in (int(s) for s in args.sizes.split(",")) if args.paired else ():
        print(f"... {n:,} assignments, ten and full interleaved", file=sys.stderr, flush=True)
        pairs.append(run_pair(n, args.queries, args.seed))

    print(f"\nRBAC authorize(), {args.queries:,} queries per size, Python {platform.python_version()} "
          f"on {platform.machine()} ({platform.processor() or 'cpu'})\n")
    print(f"catalogue at start-up ({startup['roles']:.0f} built-in roles, median of 5 fresh interpreters): "
          f"catalogue load {startup['catalogue_load_ms']:.1f} ms (within import cielo.rbac "
          f"{startup['import_ms']:.1f} ms), first index {startup['first_index_ms']:.1f} ms; compiling every role "
          f"{startup['compile_all_ms']:.1f} ms (once per process, only as each is first assigned)\n")
    print("| catalogue (roles) | assignments | build s (CPU s) | index RSS MB | decisions/s | CPU µs/decision | p50 µs "
          "| p99 µs | p99.9 µs | pre-parsed scope p50 / p99 µs | allowed % | naive decisions/s | naive p50 µs "
          "| naive p99 µs | naive queries |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        e, pp, nv = r["engine"], r["engine_preparsed_scope"], r.get("naive") or {}
        assert isinstance(e, dict) and isinstance(pp, dict) and isinstance(nv, dict)
        print(f"| {r['catalogue']} ({r['roles']}) | {r['assignments']:,} | {r['build_s']:.2f} ({r['build_cpu_s']:.2f}) "
              f"| {fmt(r['index_rss_mb'], '.0f')} "
              f"| {e['decisions_per_s']:,.0f} | {e['cpu_us_per_decision']:.1f} | {e['p50_us']:.1f} | {e['p99_us']:.1f} "
              f"| {e['p999_us']:.1f} | {pp['p50_us']:.1f} / {pp['p99_us']:.1f} | {e['allowed_pct']:.1f} "
              f"| {fmt(nv.get('decisions_per_s'), ',.0f')} | {fmt(nv.get('p50_us'), ',.1f')} "
              f"| {fmt(nv.get('p99_us'), ',.1f')} | {fmt(nv.get('queries'), ',')} |")
    if pairs:
        print(f"\nThe same questions to `ten` and `full` indexes built from one tenant, interleaved in chunks of "
              f"{PAIR_CHUNK:,} in alternating order (every answer agreed):\n")
        print("| assignments | scope | ten p50 / p99 / p99.9 µs | full p50 / p99 / p99.9 µs "
              "| ten / full CPU µs/decision | ten / full decisions/s |")
        print("|---:|---|---:|---:|---:|---:|")
        for pair in pairs:
            for label, key in (("string", "engine"), ("pre-parsed", "engine_preparsed_scope")):
                ab = pair[key]
                assert isinstance(ab, dict)
                t, f = ab["ten"], ab["full"]
                print(f"| {pair['assignments']:,} | {label} "
                      f"| {t['p50_us']:.1f} / {t['p99_us']:.1f} / {t['p999_us']:.1f} "
                      f"| {f['p50_us']:.1f} / {f['p99_us']:.1f} / {f['p999_us']:.1f} "
                      f"| {t['cpu_us_per_decision']:.1f} / {f['cpu_us_per_decision']:.1f} "
                      f"| {t['decisions_per_s']:,.0f} / {f['decisions_per_s']:,.0f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    out = REPO / "benchmarks" / "results" / "rbac.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"queries": args.queries, "startup": startup, "results": results, "paired": pairs},
                              indent=2))
    print(f"\nwrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
