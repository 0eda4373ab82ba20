"""Portal page render time (server time, in-process) with a busy subscription: 1,000 role assignments and 200
resources. Prints the median and worst of each page over several requests, beside the bare ARM role-assignment
listing the IAM page is built on (the baseline, measured in the same run). Not a timed test.

    .venv/bin/python benchmarks/portal_render.py [--assignments 1000] [--resources 200] [--runs 7] [--only IAM]
    .venv/bin/python benchmarks/portal_render.py --only IAM --profile 'cielo/web'   # cProfile instead of timing

To compare two versions of the portal on a shared (noisy) machine, run them interleaved, e.g. with PYTHONPATH
pointing at an extracted `git archive` of each `src/`, old, new, old, new, and compare each page with its run's
baseline row.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
import uuid
from html import unescape
from pathlib import Path

import httpx

from cielo.api.app import build_services, create_app
from cielo.bootstrap import bootstrap
from cielo.settings import Settings

BASE = "https://127.0.0.1:8443"
ADMIN, PASSWORD = "admin@cielo.local", "Bench-Passw0rd!x"
CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
ROLES = ["acdd72a7-3385-48ef-bd42-f606fba81ae7", "b24988ac-6180-42a0-ab88-20f7382dd24c",
         "a97b65f3-24c7-4388-baec-2e87135dc908", "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
         "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"]
_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


async def main(assignments: int, resources: int, runs: int, only: str | None = None,
               profile: str | None = None) -> None:
    data_dir = Path(tempfile.mkdtemp()) / "data"
    settings = Settings(data_dir=data_dir, enable_mock_model=True)
    services = build_services(settings)
    result = bootstrap(services, ADMIN, PASSWORD)
    assert result.subscription is not None
    sub, tenant = result.subscription.id, result.tenant.id
    app = create_app(settings, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=120) as c:
        async def token(resource: str) -> str:
            r = await c.post(f"/{tenant}/oauth2/token", data={"client_id": CLI, "grant_type": "password",
                                                              "username": ADMIN, "password": PASSWORD,
                                                              "resource": resource})
            return str(r.json()["access_token"])
        arm = {"Authorization": f"Bearer {await token('https://management.azure.com/')}"}
        graph = {"Authorization": f"Bearer {await token('https://graph.microsoft.com')}"}
        rg = f"/subscriptions/{sub}/resourceGroups/bench-rg"
        await c.put(rg, params={"api-version": "2022-09-01"}, json={"location": "eastus"}, headers=arm)
        started = time.perf_counter()
        for i in range(resources):
            r = await c.put(f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{i}",
                            params={"api-version": "2023-01-31"}, json={"location": "eastus"}, headers=arm)
            assert r.status_code in (200, 201), r.text
        principals = []
        for i in range(max(1, assignments // (len(ROLES) * 4))):
            a = await c.post("/v1.0/applications", json={"displayName": f"bench-{i}"}, headers=graph)
            sp = await c.post("/v1.0/servicePrincipals", json={"appId": a.json()["appId"]}, headers=graph)
            principals.append(sp.json()["id"])
        scopes = [f"/subscriptions/{sub}", rg] + [
            f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{i}" for i in range(2)]
        made = 0
        for p in principals:
            for role in ROLES:
                for scope in scopes:
                    if made >= assignments:
                        break
                    r = await c.put(f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                                    params={"api-version": "2022-04-01"}, headers=arm, json={"properties": {
                                        "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
                                                            f"roleDefinitions/{role}",
                                        "principalId": p, "principalType": "ServicePrincipal"}})
                    assert r.status_code == 201, r.text
                    made += 1
        print(f"setup: {resources} resources, {made} role assignments, {len(principals)} principals "
              f"in {time.perf_counter() - started:.1f} s")

        # Sign in to the portal as a browser does.
        go = await c.get("/portal/signin")
        authorize = await c.get(go.headers["location"])
        form = {n: unescape(v) for n, v in _INPUT.findall(authorize.text)}
        posted = await c.post(go.headers["location"].split("?")[0],
                              data={**form, "username": ADMIN, "password": PASSWORD})
        back = await c.post("/portal/signin-oidc", data={n: unescape(v) for n, v in _INPUT.findall(posted.text)})
        assert back.status_code == 303, back.text

        ident = f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-0"
        pages = {
            "baseline: ARM roleAssignments list (rg)": (f"{rg}/providers/Microsoft.Authorization/roleAssignments"
                                                        "?api-version=2022-04-01", arm),
            "home": ("/", None),
            "all resources": ("/portal/resources", None),
            "subscription overview": (f"/portal/resource/subscriptions/{sub}/overview", None),
            "resource group overview": (f"/portal/resource{rg}/overview", None),
            "resource overview": (f"/portal/resource{ident}/overview", None),
            "IAM (resource group)": (f"/portal/resource{rg}/iam", None),
            "IAM (subscription)": (f"/portal/resource/subscriptions/{sub}/iam", None),
            "Check access": (f"/portal/resource{rg}/iam?tab=check&principal={principals[0]}", None),
            "Roles": (f"/portal/resource{rg}/iam?tab=roles", None),
            "Add role assignment": (f"/portal/resource{rg}/iam?tab=add", None),
            "Activity log (rg)": (f"/portal/resource{rg}/activity", None),
            "Entra ID users": ("/portal/entra", None),
            "Entra ID service principals": ("/portal/entra?tab=sps", None),
        }
        if only:
            pages = {k: v for k, v in pages.items() if only.lower() in k.lower()}
        if profile:
            import cProfile
            import pstats

            for name, (path, headers) in pages.items():
                await c.get(path, headers=headers)
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(runs):
                    await c.get(path, headers=headers)
                prof.disable()
                print(f"== {name}")
                pstats.Stats(prof).sort_stats("cumulative").print_stats(profile)
            return
        print(f"{'page':42} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
        for name, (path, headers) in pages.items():
            times, size = [], 0
            for _ in range(runs):
                t0 = time.perf_counter()
                r = await c.get(path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (name, r.status_code, r.text[:300])
                size = len(r.content)
            flag = "" if statistics.median(times) < 100 else "  (over 100 ms)"
            print(f"{name:42} {statistics.median(times):10.1f} {max(times):8.1f} {size:9}{flag}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", type=int, default=1000)
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", help="the pages whose name contains this text")
    parser.add_argument("--profile", metavar="PATTERN",
                        help="instead of timing, profile each page (cProfile) and print the functions matching PATTERN")
    args = parser.parse_args()
    asyncio.run(main(args.assignments, args.resources, args.runs, args.only, args.profile))
