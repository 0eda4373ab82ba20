"""The Activity log blade: Azure's Activity Log API (`GET /subscriptions/{id}/providers/Microsoft.Insights/
eventtypes/management/values?api-version=2015-04-01&$filter=…`) read as the signed-in user, filtered to this scope
(its resource group or resource) and a time span; a refusal shows the API's error."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

from starlette.responses import Response

from cielo.web.portal.ids import Scope
from cielo.web.portal.resources import blade
from cielo.web.portal.web import Portal

SPANS = {"1h": 1, "6h": 6, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}
# Only what the table shows: the API's $select keeps the rest (claims, authorization, properties) off the wire.
SELECT = "operationName,status,eventTimestamp,caller,resourceId,correlationId"


def _skip_token(next_link: object) -> str:
    """The `$skipToken` of the API's `nextLink` (the portal's "Older events" link carries it back)."""
    if not isinstance(next_link, str):
        return ""
    query = parse_qs(urlsplit(next_link).query)
    return (query.get("$skipToken") or query.get("$skiptoken") or [""])[0]


@blade("activity")
async def activity(portal: Portal, scope: Scope) -> Response:
    span = portal.query("span", "24h")
    span = span if span in SPANS else "24h"
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=SPANS[span])).strftime("%Y-%m-%dT%H:%M:%SZ")
    clauses = [f"eventTimestamp ge '{start}'"]
    if scope.type:
        clauses.append(f"resourceUri eq '{scope.id.replace(chr(39), chr(39) * 2)}'")
    elif scope.group:
        clauses.append(f"resourceGroupName eq '{scope.group.replace(chr(39), chr(39) * 2)}'")
    params = {"$filter": " and ".join(clauses), "$select": SELECT}
    after = portal.query("after")
    if after:
        params["$skipToken"] = after
    found, error = await portal.api.try_arm(
        "GET", f"/subscriptions/{scope.subscription}/providers/Microsoft.Insights/eventtypes/management/values",
        "insights", params=params)
    rows = sorted((found or {}).get("value", []), key=lambda e: str(e.get("eventTimestamp", "")), reverse=True)
    return portal.render("portal/activity.html", title="Activity log", subtitle=scope.name or scope.group or "",
                         scope=scope.id, blade="activity", rows=rows, error=error, span=span, spans=list(SPANS),
                         older=_skip_token((found or {}).get("nextLink")), paged=bool(after))
