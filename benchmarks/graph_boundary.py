#!/usr/bin/env python3
"""The directory API's typed wire boundary (api/graph_protocol.py) against the hand-written checks it replaced.

Two measurements, interleaved in one run so that both sides see the same machine:

1. Validation alone, per body: `graph_protocol.parse(Model, body)` against the old `isinstance` helpers (copied
   below, as they were in api/graph.py before the typed boundary), on the bodies az and `cielo ad` send.
2. Whole requests, in-process (httpx.ASGITransport on create_app, SQLite in a temporary directory): a Graph
   create + get of a group (POST /v1.0/groups, GET /v1.0/groups/{id}) through today's router and through the old
   router (api/graph.py read from git at --old-commit and mounted in its place in a second app over the same
   services). Skipped, saying why, where git or that commit is not at hand.

Usage:
    .venv/bin/python benchmarks/graph_boundary.py [--rounds 5] [--n 20000] [--requests 400]
It prints microseconds per call (the best of the rounds, and the median) for each side and their difference.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cielo.api import graph_protocol as gp
from cielo.errors import GraphBadRequest

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- the old checks (copied)
def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise GraphBadRequest(f"Invalid value specified for property '{name}'.")
    return value


def _uris(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraphBadRequest(f"Invalid value specified for property '{name}'.")
    return list(value)


def _end(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise GraphBadRequest("endDateTime must be an ISO 8601 string.")
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise GraphBadRequest("endDateTime must be an ISO 8601 string.") from exc


def _refuse_forced_change(profile: dict[str, Any]) -> None:
    if profile.get("forceChangePasswordNextSignIn"):
        raise GraphBadRequest("'forceChangePasswordNextSignIn' must be false.")


def old_user(body: dict[str, Any]) -> Any:
    profile = body.get("passwordProfile")
    if not isinstance(profile, dict):
        raise GraphBadRequest("Property passwordProfile is required.")
    _refuse_forced_change(profile)
    return _text(body, "userPrincipalName"), _text(body, "displayName"), _text(profile, "password")


def old_group(body: dict[str, Any]) -> Any:
    description = body.get("description")
    return _text(body, "displayName"), _text(body, "mailNickname"), (
        description if isinstance(description, str) else None)


def old_application(body: dict[str, Any]) -> Any:
    public = body.get("publicClient") or {}
    web = body.get("web") or {}
    api = body.get("api") or {}
    if not isinstance(public, dict) or not isinstance(web, dict) or not isinstance(api, dict):
        raise GraphBadRequest("publicClient, web and api must be objects.")
    version = api.get("requestedAccessTokenVersion") or 1
    return (_text(body, "displayName"), bool(body.get("isFallbackPublicClient", False)),
            _uris(public.get("redirectUris"), "publicClient.redirectUris") + _uris(web.get("redirectUris"),
                                                                                   "web.redirectUris"),
            _uris(body.get("identifierUris"), "identifierUris"), version if isinstance(version, int) else 0)


def old_add_password(body: dict[str, Any]) -> Any:
    cred = body.get("passwordCredential") or {}
    if not isinstance(cred, dict):
        raise GraphBadRequest("passwordCredential must be an object.")
    name = cred.get("displayName")
    return name if isinstance(name, str) else None, _end(cred.get("endDateTime")), bool(body.get("replace", False))


def old_update_application(body: dict[str, Any]) -> Any:
    ders = []
    if "keyCredentials" in body:
        creds = body["keyCredentials"]
        if not isinstance(creds, list):
            raise GraphBadRequest("keyCredentials must be a list.")
        for cred in (c for c in creds if isinstance(c, dict) and c.get("key")):
            try:
                ders.append(base64.b64decode(str(cred["key"]), validate=True))
            except (binascii.Error, ValueError) as exc:
                raise GraphBadRequest("keyCredentials.key must be base64.") from exc
    fields: dict[str, Any] = {}
    if "displayName" in body:
        fields["display_name"] = _text(body, "displayName")
    if "identifierUris" in body:
        fields["identifier_uris"] = _uris(body["identifierUris"], "identifierUris")
    return ders, fields


def old_get_by_ids(body: dict[str, Any]) -> Any:
    ids, kinds = body.get("ids"), body.get("types")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
        raise GraphBadRequest("'ids' must be a list of at most 1000 object ids.")
    return ids, {str(t).lower() for t in kinds} if isinstance(kinds, list) and kinds else None


# ----------------------------------------------------------------------------- the bodies clients send
CERT = base64.b64encode(b"0" * 800).decode()  # a certificate's size; validation only decodes it
BODIES: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], Any], type[gp.GraphBody]]] = [
    ("POST /users", {"accountEnabled": True, "displayName": "Ada", "mailNickname": "ada",
                     "userPrincipalName": "ada@cielo.local",
                     "passwordProfile": {"password": "Ada-Passw0rd!x", "forceChangePasswordNextSignIn": False}},
     old_user, gp.NewUser),
    ("POST /groups", {"displayName": "Team", "mailNickname": "team", "description": None, "mailEnabled": False,
                      "securityEnabled": True}, old_group, gp.NewGroup),
    ("POST /applications", {"displayName": "my-api", "isFallbackPublicClient": False,
                            "publicClient": {"redirectUris": ["http://localhost"]},
                            "web": {"redirectUris": ["https://app.example/cb"]}, "identifierUris": ["api://my-api"],
                            "api": {"requestedAccessTokenVersion": 2}}, old_application, gp.NewApplication),
    ("POST addPassword", {"passwordCredential": {"displayName": "ci", "endDateTime": "2030-01-01T00:00:00Z"},
                          "replace": True}, old_add_password, gp.AddPassword),
    ("PATCH /applications", {"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": CERT,
                                                 "displayName": "ci"}]}, old_update_application,
     gp.ApplicationUpdate),
    ("POST getByIds (20 ids)", {"ids": [str(uuid.UUID(int=i)) for i in range(20)],
                                "types": ["user", "group", "servicePrincipal"]}, old_get_by_ids, gp.ObjectsByIds),
]


def _per_call_us(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def validation(rounds: int, n: int) -> None:
    print(f"1. validation alone, µs per body (best / median of {rounds} rounds of {n}, interleaved)")
    print(f"   {'body':<26}{'old isinstance':>18}{'pydantic':>18}{'difference':>14}")
    for name, body, old, model in BODIES:
        olds, news = [], []
        for _ in range(rounds):
            olds.append(_per_call_us(lambda body=body, old=old: old(body), n))  # type: ignore[misc]
            news.append(_per_call_us(lambda body=body, model=model: gp.parse(model, body), n))  # type: ignore[misc]
        print(f"   {name:<26}{min(olds):>9.2f} / {statistics.median(olds):<6.2f}"
              f"{min(news):>9.2f} / {statistics.median(news):<6.2f}{min(news) - min(olds):>+12.2f}")


# ----------------------------------------------------------------------------- whole requests
def _old_router(commit: str) -> Any:
    """api/graph.py as it was at `commit`, imported as a module of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:src/cielo/api/graph.py"],
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("cielo.api.graph_before_typed_boundary")
    module.__file__ = "graph_before_typed_boundary.py"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module.router


def _swap_router(app: Any, router: Any, replacement: Any) -> None:
    """Mount `replacement` where `app` includes `router`, in the same place of the route table."""
    routes = app.router.routes
    for index, route in enumerate(routes):
        if getattr(route, "original_router", None) is router:  # FastAPI's lazily included router
            routes[index] = dataclasses.replace(route, original_router=replacement)
            return
    first = next(i for i, r in enumerate(routes) if getattr(r, "path", "").startswith(router.prefix))
    kept = [r for r in routes if not getattr(r, "path", "").startswith(router.prefix)]
    app.router.routes = kept[:first] + list(replacement.routes) + kept[first:]


def requests(old_commit: str, rounds: int, count: int) -> None:
    import httpx

    from cielo.api import graph
    from cielo.api.app import build_services, create_app
    from cielo.bootstrap import bootstrap
    from cielo.core.clock import FrozenClock
    from cielo.settings import Settings

    print(f"\n2. Graph create + get of a group in-process, CPU µs per pair (best / median of {rounds} rounds of "
          f"{count}; CPU time, as the wall time is mostly SQLite's commit)")
    try:
        old_router = _old_router(old_commit)
    except (OSError, subprocess.CalledProcessError, SyntaxError, ImportError) as exc:
        print(f"   skipped: the old router (git show {old_commit}:src/cielo/api/graph.py) is not at hand: {exc}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        services = build_services(settings, FrozenClock())
        result = bootstrap(services, "admin@cielo.local", "Bench-Passw0rd!x")
        new_app = create_app(settings, services)
        old_app = create_app(settings, services)
        _swap_router(old_app, graph.router, old_router)

        async def run() -> None:
            base = settings.base_url
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=new_app), base_url=base) as client:
                token = await client.post(f"/{result.tenant.id}/oauth2/token", data={
                    "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "grant_type": "password",
                    "username": "admin@cielo.local", "password": "Bench-Passw0rd!x",
                    "resource": "https://graph.microsoft.com"})
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            clients = {name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
                       for name, app in (("old", old_app), ("new", new_app))}
            timings: dict[str, list[float]] = {"old": [], "new": []}
            for round_ in range(rounds + 1):  # the first round warms both up and is not counted
                spent = {"old": 0.0, "new": 0.0}
                for i in range(count):  # pair by pair, alternating, so that both see the same database and load
                    for name, client in clients.items():
                        start = time.process_time()
                        created = await client.post("/v1.0/groups", headers=headers, json={
                            "displayName": "Bench", "mailNickname": f"b-{name}-{round_}-{i}", "description": None,
                            "mailEnabled": False, "securityEnabled": True})
                        got = await client.get(f"/v1.0/groups/{created.json()['id']}", headers=headers)
                        spent[name] += time.process_time() - start
                        assert (created.status_code, got.status_code) == (201, 200), (created.text, got.text)
                if round_:
                    for name in spent:
                        timings[name].append(spent[name] / count * 1e6)
            for client in clients.values():
                await client.aclose()
            old, new = timings["old"], timings["new"]
            print(f"   old router (isinstance, per-route getters) {min(old):9.1f} / {statistics.median(old):.1f}")
            print(f"   new router (pydantic, Depends aliases)     {min(new):9.1f} / {statistics.median(new):.1f}")
            print(f"   difference {min(new) - min(old):+.1f} µs per pair ({(min(new) / min(old) - 1) * 100:+.1f}%)")

        asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20000, help="validations per round and body")
    parser.add_argument("--requests", type=int, default=300, help="create + get pairs per round and router")
    parser.add_argument("--old-commit", default="14cda6a^",
                        help="the commit whose api/graph.py is the old router (the typed boundary's parent)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, pydantic {importlib.util.find_spec('pydantic') and _pydantic()}")
    validation(args.rounds, args.n)
    requests(args.old_commit, args.rounds, args.requests)


def _pydantic() -> str:
    import pydantic

    return pydantic.VERSION


if __name__ == "__main__":
    main()
