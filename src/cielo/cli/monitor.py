"""`cielo monitor activity-log list`: the activity log, mirroring `az monitor activity-log list` (docs/monitoring.md).

The window is az's: `--start-time`/`--end-time` (ISO 8601), else `--offset` (`##d##h`, default 6h) back from the
end (default now), or forward from the start. The other options become the server's `$filter`; the command
follows `nextLink` until `--max-events` (default 50) are listed, newest first.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import click

from cielo.cli.armcall import arm, group_path, subscription_id
from cielo.cli.common import CliError, global_options, table_layout

API_VERSION = "2015-04-01"
_OFFSET = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?", re.IGNORECASE)
_STATUSES = ("Started", "Succeeded", "Failed")


def parse_offset(text: str) -> dt.timedelta:
    """az's `##d##h` offsets (minutes too: `30m`)."""
    match = _OFFSET.fullmatch(text.strip())
    if match is None or not any(match.groups()):
        raise CliError(f"usage error: --offset '{text}' is not in ##d##h format (e.g. 6h, 1d, 1d12h)")
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes)


def parse_when(text: str, option: str) -> dt.datetime:
    value = re.sub(r"(\.\d{1,6})\d*", r"\1", text.strip())
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"usage error: {option} '{text}' is not an ISO 8601 date-time "
                       "(e.g. 2024-05-01T10:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def window(start: str | None, end: str | None, offset: str | None,
           now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """az's rules: both given: as given; one given: the offset (default 6h) from it; none: the offset back from
    now."""
    delta = parse_offset(offset) if offset else dt.timedelta(hours=6)
    begin = parse_when(start, "--start-time") if start else None
    finish = parse_when(end, "--end-time") if end else None
    if begin is not None and finish is not None:
        if offset:
            raise CliError("usage error: --offset cannot be used with both --start-time and --end-time")
        return begin, finish
    if begin is not None:
        return begin, begin + delta
    finish = finish or now or dt.datetime.now(dt.UTC)
    return finish - delta, finish


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quote(value: str) -> str:
    return value.replace("'", "''")


def build_filter(start: dt.datetime, end: dt.datetime, *, resource_group: str | None = None,
                 resource_id: str | None = None, namespace: str | None = None, correlation_id: str | None = None,
                 caller: str | None = None, status: str | None = None) -> str:
    clauses = [f"eventTimestamp ge '{_iso(start)}'", f"eventTimestamp le '{_iso(end)}'"]
    for field, value in (("resourceGroupName", resource_group), ("resourceUri", resource_id),
                         ("resourceProvider", namespace), ("correlationId", correlation_id), ("caller", caller),
                         ("status", status)):
        if value:
            clauses.append(f"{field} eq '{_quote(value)}'")
    return " and ".join(clauses)


@click.group("monitor")
def monitor() -> None:
    """Monitor Cielo: the activity log.

    \b
    Examples:
      cielo monitor activity-log list --offset 1d -o table
      cielo monitor activity-log list -g cielo-rg --status Failed"""


@monitor.group("activity-log")
def activity_log() -> None:
    """The activity log: resource-manager writes, sign-ins and token issuances, data-plane denials.

    \b
    Examples:
      cielo monitor activity-log list --offset 1d -o table
      cielo monitor activity-log list --correlation-id 7a2c5f0e-0000-4000-8000-000000000000"""


def _table(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"EventTimestamp": e.get("eventTimestamp"), "Operation": (e.get("operationName") or {}).get("value"),
             "Status": (e.get("status") or {}).get("value"), "Caller": e.get("caller"),
             "ResourceGroup": e.get("resourceGroupName"), "CorrelationId": e.get("correlationId")} for e in result]


@activity_log.command("list")
@click.option("-g", "--resource-group", default=None, help="Events of this resource group.")
@click.option("--resource-id", default=None, help="Events of this resource (its full id).")
@click.option("--namespace", default=None, help="Events of this resource provider (e.g. Microsoft.Authorization).")
@click.option("--correlation-id", default=None, help="Events of one operation.")
@click.option("--caller", default=None, help="Events of this caller (UPN or application id).")
@click.option("--status", default=None, type=click.Choice(_STATUSES, case_sensitive=False),
              help="Events with this status.")
@click.option("--start-time", default=None, help="Start of the window, ISO 8601 (e.g. 2024-05-01T10:00:00Z).")
@click.option("--end-time", default=None, help="End of the window, ISO 8601 (default: now).")
@click.option("--offset", default=None, help="Length of the window in ##d##h format (default 6h).")
@click.option("--max-events", type=click.IntRange(min=1), default=50, show_default=True,
              help="Most events to list.")
@click.option("--select", "select", multiple=True, help="Properties to show (repeatable, or comma separated).")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
@table_layout(_table)
def activity_log_list(resource_group: str | None, resource_id: str | None, namespace: str | None,
                      correlation_id: str | None, caller: str | None, status: str | None, start_time: str | None,
                      end_time: str | None, offset: str | None, max_events: int, select: tuple[str, ...],
                      subscription: str | None) -> Any:
    """List activity-log events, newest first."""
    given = [name for name, value in (("--resource-group", resource_group), ("--resource-id", resource_id),
                                      ("--namespace", namespace), ("--correlation-id", correlation_id)) if value]
    if len(given) > 1:  # az: one of them at most (Azure's filter patterns)
        raise CliError(f"usage error: {' and '.join(given)} cannot be used together")
    begin, end = window(start_time, end_time, offset)
    flt = build_filter(begin, end, resource_group=resource_group, resource_id=resource_id, namespace=namespace,
                       correlation_id=correlation_id, caller=caller,
                       status=status.capitalize() if status else None)
    params = {"api-version": API_VERSION, "$filter": flt}
    names = [n.strip() for item in select for n in item.split(",") if n.strip()]
    if names:
        params["$select"] = ",".join(names)
    path = (group_path(resource_group, subscription).rsplit("/resourceGroups/", 1)[0] if resource_group
            else f"/subscriptions/{subscription_id(subscription)}")
    path += "/providers/Microsoft.Insights/eventtypes/management/values"
    events: list[dict[str, Any]] = []
    while len(events) < max_events:
        page = arm("GET", path, params=params)
        events.extend(page.get("value") or [])
        link = page.get("nextLink")
        if not link:
            break
        parts = urlsplit(link)
        path, params = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
    return events[:max_events]
