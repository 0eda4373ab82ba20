"""The portal's long lists in-process: Access control (IAM) pages its role assignments (fifty a page, names looked up
for the page shown, a search by name across all of them) and the Activity log pages through the API's nextLink."""

from __future__ import annotations

import re

from inproc import World, arm_call, assign, new_principal, unique
from test_api_portal import portal_client, sign_in

ROLES = ("Reader", "Contributor", "Cognitive Services User", "User Access Administrator", "Owner")
_HERE_ROW = re.compile(r'<input type="hidden" name="id" value="([^"]+)">')
_TAG = re.compile(r'Role assignments <span class="tag">(\d+)</span>')


def body_rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr>")[1:]


async def test_iam_pages_a_long_list_and_searches_it_by_name(world: World) -> None:
    rg = world.rg_path(unique("portal-pages"))
    made: set[str] = set()
    async with world.client() as client:
        assert (await arm_call(client, world, "PUT", rg, {"location": "eastus"})).status_code == 201
        for _ in range(12):  # more principals than one getByIds call is asked for: listed per type
            principal = await new_principal(client, world, unique("pager"))
            for role in ROLES:
                made.add((await assign(client, world, role, principal.sp_id, rg))["id"].lower())
        sps = (await client.get("/v1.0/servicePrincipals", headers=world.graph)).json()["value"]
        display = {s["id"]: s["displayName"] for s in sps}
    iam = f"/portal/resource{rg}/iam"
    async with portal_client(world) as browser:
        first = await sign_in(browser, start=iam)
        assert first.status_code == 200, first.text
        total = int(_TAG.search(first.text).group(1))  # type: ignore[union-attr]
        assert total >= 60  # the sixty here, and those inherited from the subscription
        assert len(body_rows(first.text)) == 50
        pages = -(-total // 50)
        assert f"Page 1 of {pages}" in first.text and f"1\u201350 of {total}" in first.text
        assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
        seen = {i.lower() for i in _HERE_ROW.findall(first.text)}
        assert len(seen) == 50  # assignments here come first: the whole first page is removable here
        for n in range(2, pages + 1):
            page = await browser.get(f"{iam}?page={n}")
            assert page.status_code == 200 and f"Page {n} of {pages}" in page.text
            seen |= {i.lower() for i in _HERE_ROW.findall(page.text)}
        assert seen == made  # every assignment here, each on one page
        shown = re.findall(r"principal=([0-9a-f-]{36})\">([^<]+)</a>", first.text)
        assert len(shown) == 50
        for principal_id, label in shown:  # each principal named, not shown by its id
            assert label == display.get(principal_id, label) and not re.fullmatch(r"[0-9a-f-]{36}", label), label
        # Past the last page, or not a number: the nearest page, never an error.
        assert f"Page {pages} of {pages}" in (await browser.get(f"{iam}?page=999")).text
        assert "Page 1 of" in (await browser.get(f"{iam}?page=x")).text
        # Search by a principal's name: its five roles, across every page.
        some_sp = next(r for r in body_rows(first.text) if "pager-" in r)
        wanted = re.search(r">(pager-[0-9a-f]{8})<", some_sp).group(1)  # type: ignore[union-attr]
        found = await browser.get(iam, params={"q": wanted})
        assert found.status_code == 200
        rows = body_rows(found.text)
        assert len(rows) == 5 and all(wanted in r for r in rows), rows
        assert _TAG.search(found.text).group(1) == "5"  # type: ignore[union-attr]
        assert "Page 1 of" not in found.text  # one page: no pager
        nothing = await browser.get(iam, params={"q": "no-such-principal-anywhere"})
        assert "No role assignments." in nothing.text


async def test_activity_log_pages_through_the_api_next_link(world: World) -> None:
    name = unique("portal-act-pages")
    rg = world.rg_path(name)
    async with world.client() as client:
        for n in range(205):  # the API answers 200 events a page
            answer = await arm_call(client, world, "PUT", rg, {"location": "eastus", "tags": {"n": str(n)}})
            assert answer.status_code in (200, 201), answer.text
    log = f"/portal/resource{rg}/activity?span=30d"
    async with portal_client(world) as browser:
        first = await sign_in(browser, start=log)
        assert first.status_code == 200, first.text
        assert len(body_rows(first.text)) == 200
        older = re.search(r'href="([^"]+)" rel="next">Older events', first.text)
        assert older, first.text[-2000:]
        second = await browser.get(older.group(1).replace("&amp;", "&"))
        assert second.status_code == 200, second.text
        rows = body_rows(second.text)
        assert len(rows) == 5 and "Older events" not in second.text and "Newest events" in second.text
        correlation = re.compile(r"correlation ([0-9a-f-]{36})")
        assert not set(correlation.findall(first.text)) & set(correlation.findall(second.text))
        # A skip token the API cannot read is the API's refusal, shown as it put it.
        bad = await browser.get(f"/portal/resource{rg}/activity?span=30d&after=not-a-token")
        assert bad.status_code == 400 and "skipToken" in bad.text
