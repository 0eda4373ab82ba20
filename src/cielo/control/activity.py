"""The activity log service: recording events cheaply, and answering Azure's Activity Log API
(`Microsoft.Insights/eventtypes/management/values`, api-version 2015-04-01; docs/monitoring.md).

Recording never waits on the database: `record` appends to an in-memory list and wakes one writer thread, which
stores what accumulated in one transaction (and, at most hourly, deletes what is older than the retention). A
query first writes what this process still holds, so a caller reads its own writes; another worker's events are
stored within milliseconds.

The `$filter` grammar is Azure's: clauses joined by `and`, each `FIELD OP 'VALUE'`; `eventTimestamp ge` is
required and the window may not exceed 90 days (Azure's limit), answered 400 `BadRequest` in ARM's envelope.
A field Cielo does not filter on is refused by name, never ignored.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cielo.core.clock import Clock
from cielo.errors import BadRequest
from cielo.store.activity import ActivityQuery, ActivityRepo, ActivityRow

__all__ = ["ActivityLog", "ActivityRow", "EventFilter", "event_json", "parse_filter", "parse_select"]

log = logging.getLogger("cielo.activity")

DAY_S = 86400.0
MAX_WINDOW_DAYS = 90  # Azure's: a query may span and reach back at most 90 days
PAGE_SIZE = 200
PURGE_EVERY_S = 3600.0
# The properties `$select` may name: the 2015-04-01 spec's list, and the others EventData carries.
SELECTABLE = ("authorization", "caller", "category", "channels", "claims", "correlationId", "description",
              "eventDataId", "eventName", "eventTimestamp", "httpRequest", "id", "level", "operationId",
              "operationName", "properties", "resourceGroupName", "resourceProviderName", "resourceId",
              "resourceType", "status", "subStatus", "submissionTimestamp", "subscriptionId", "tenantId")
_SELECTABLE_LOWER = {name.lower(): name for name in SELECTABLE}
_TICKS_AT_EPOCH = 621355968000000000  # .NET ticks (100 ns since 0001-01-01) at 1970-01-01


# ----------------------------------------------------------------------------- $filter
@dataclass(frozen=True)
class EventFilter:
    start: float
    end: float
    resource_group: str | None = None
    resource_uri: str | None = None
    resource_provider: str | None = None
    correlation_id: str | None = None
    caller: str | None = None
    status: str | None = None


_CLAUSE = re.compile(r"\s*([A-Za-z]+)\s+(eq|ge|le)\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_EQ_FIELDS = {"resourcegroupname": "resource_group", "resourceuri": "resource_uri", "resourceid": "resource_uri",
              "resourceprovider": "resource_provider", "correlationid": "correlation_id", "caller": "caller",
              "status": "status"}
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_STATUSES = {"started": "Started", "succeeded": "Succeeded", "failed": "Failed"}


def _invalid(detail: str) -> BadRequest:
    # Azure answers an invalid or missing $filter 400 BadRequest "$filter searching parameters invalid."
    # (MicrosoftDocs/feedback#319); Cielo adds what is wrong.
    return BadRequest(f"$filter searching parameters invalid: {detail}")


def parse_time(text: str) -> float:
    """An ISO 8601 time as Azure's clients send it (`2024-05-01T10:00:00.1234567Z`, an offset, or a date alone);
    UTC when no zone is given. ValueError otherwise."""
    value = _FRACTION.sub(r"\1", text.strip()).replace("z", "Z")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _split_clauses(text: str) -> list[str]:
    """`A and B` split on `and` outside quotes."""
    clauses: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        if not quoted:
            match = _AND.match(text, i)
            if match is not None:
                clauses.append("".join(current))
                current = []
                i = match.end()
                continue
        current.append(ch)
        i += 1
    clauses.append("".join(current))
    return clauses


def parse_filter(text: str | None, now: float) -> EventFilter:
    """Azure's activity-log `$filter` (see the module docstring); `now` bounds an open window."""
    if not text or not text.strip():
        raise _invalid("a filter with eventTimestamp ge '<time>' is required.")
    start: float | None = None
    end: float | None = None
    equal: dict[str, str] = {}
    for clause in _split_clauses(text):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise _invalid(f"cannot read the clause '{clause.strip()[:100]}'; clauses are FIELD eq|ge|le 'VALUE' "
                           "joined by 'and'.")
        field, op, value = match.group(1), match.group(2).lower(), match.group(3).replace("''", "'")
        key = field.lower()
        if key == "eventtimestamp":
            if op == "eq":
                raise _invalid("eventTimestamp takes ge and le, not eq.")
            try:
                moment = parse_time(value)
            except ValueError:
                raise _invalid(f"'{value[:60]}' is not an ISO 8601 time.") from None
            if op == "ge":
                start = moment
            else:
                end = moment
            continue
        name = _EQ_FIELDS.get(key)
        if name is None:
            raise _invalid(f"the field '{field[:60]}' is not supported; use eventTimestamp, resourceGroupName, "
                           "resourceUri, resourceProvider, correlationId, caller or status.")
        if op != "eq":
            raise _invalid(f"{field} takes eq only.")
        if name in equal:
            raise _invalid(f"{field} is given twice.")
        if name == "status":
            if value.lower() not in _STATUSES:
                raise _invalid(f"status '{value[:40]}' is not one of Started, Succeeded, Failed.")
            value = _STATUSES[value.lower()]
        equal[name] = value
    if start is None:
        raise _invalid("eventTimestamp ge '<time>' is required.")
    end = now if end is None else end
    if end < start:
        raise _invalid("the end time (eventTimestamp le) is before the start time (eventTimestamp ge).")
    if end - start > MAX_WINDOW_DAYS * DAY_S:
        raise BadRequest(f"The time window of the query is more than {MAX_WINDOW_DAYS} days: queries may span "
                         f"{MAX_WINDOW_DAYS} days at most.")
    if start < now - MAX_WINDOW_DAYS * DAY_S:
        raise BadRequest(f"The start time is more than {MAX_WINDOW_DAYS} days in the past: the activity log keeps "
                         f"and queries {MAX_WINDOW_DAYS} days at most.")
    return EventFilter(start, end, **equal)


def parse_select(text: str | None) -> tuple[str, ...] | None:
    """`$select`: property names, comma separated (case-insensitive); None for all."""
    if text is None or not text.strip():
        return None
    names = []
    for part in text.split(","):
        name = _SELECTABLE_LOWER.get(part.strip().lower())
        if name is None:
            raise BadRequest(f"$select names an unknown property '{part.strip()[:60]}'; the properties are "
                             f"{', '.join(SELECTABLE)}.")
        names.append(name)
    return tuple(names)


def skip_token(row: ActivityRow) -> str:
    return base64.urlsafe_b64encode(f"{row.event_ts!r}|{row.event_data_id}".encode()).decode().rstrip("=")


def read_skip_token(token: str) -> tuple[float, str]:
    try:
        ts, _, event_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition("|")
        if not event_id:
            raise ValueError(token)
        return float(ts), event_id
    except ValueError:
        raise BadRequest("The $skipToken is invalid: pass the nextLink of an earlier page unchanged.") from None


# ----------------------------------------------------------------------------- the wire shape
def _stamp(ts: float) -> str:
    """Azure's seven-digit fractional seconds: `2024-05-01T10:00:00.1234567Z`."""
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}0Z"


def _localized(value: str, localized: str | None = None) -> dict[str, str]:
    return {"value": value, "localizedValue": localized or value}


def event_json(row: ActivityRow) -> dict[str, Any]:
    """EventData (activityLogs_API.json, 2015-04-01)."""
    d = row.detail
    ticks = int(row.event_ts * 10_000_000) + _TICKS_AT_EPOCH
    provider = str(d.get("resourceProviderName") or "")
    resource_type = str(d.get("resourceType") or "")
    body: dict[str, Any] = {
        "authorization": d.get("authorization") or {},
        "caller": row.caller,
        "channels": "Operation",
        "claims": d.get("claims") or {},
        "correlationId": row.correlation_id,
        "description": "",
        "eventDataId": row.event_data_id,
        "eventName": _localized(*d.get("eventName", ["EndRequest", "End request"])),
        "category": _localized(row.category),
        "eventTimestamp": _stamp(row.event_ts),
        "id": f"{row.resource_id.rstrip('/')}/events/{row.event_data_id}/ticks/{ticks}",
        "level": row.level,
        "operationId": str(d.get("operationId") or ""),
        "operationName": _localized(row.operation_name, d.get("operationLocalized")),
        "resourceGroupName": str(d.get("resourceGroupName") or ""),
        "resourceProviderName": _localized(provider),
        "resourceType": _localized(resource_type),
        "resourceId": row.resource_id,
        "status": _localized(row.status),
        "subStatus": _localized(*d.get("subStatus", ["", ""])),
        "submissionTimestamp": _stamp(float(d.get("submitted", row.event_ts))),
        "subscriptionId": row.subscription_id or "",
        "tenantId": row.tenant_id,
        "httpRequest": d.get("httpRequest") or {},
        "properties": d.get("properties") or {},
    }
    return body


def selected(event: dict[str, Any], select: tuple[str, ...] | None) -> dict[str, Any]:
    return event if select is None else {name: event[name] for name in select if name in event}


# ----------------------------------------------------------------------------- sub-statuses Azure names
_SUB_STATUS = {200: "OK", 201: "Created", 202: "Accepted", 204: "NoContent", 400: "BadRequest",
               401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict",
               412: "PreconditionFailed", 413: "RequestEntityTooLarge", 429: "TooManyRequests",
               500: "InternalServerError", 503: "ServiceUnavailable", 504: "GatewayTimeout"}


def sub_status(status: int) -> list[str]:
    """[value, localizedValue] for an HTTP status, as Azure shows it: "Created (HTTP Status Code: 201)"."""
    name = _SUB_STATUS.get(status, str(status))
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [name, f"{spaced} (HTTP Status Code: {status})"]


# ----------------------------------------------------------------------------- the service
@dataclass
class ActivityPage:
    events: list[ActivityRow]
    next_after: ActivityRow | None


class ActivityLog:
    """Records events (asynchronously, see the module docstring) and answers queries."""

    def __init__(self, repo: ActivityRepo, clock: Clock, retention_days: float) -> None:
        self._repo, self.clock = repo, clock
        self.retention_s = retention_days * DAY_S
        self._pending: list[ActivityRow] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread_pid: int | None = None
        self._last_purge = 0.0

    # ------------------------------------------------------------------ recording
    def record(self, rows: Iterable[ActivityRow]) -> None:
        """Queues events for the writer thread: costs a list append and an event set."""
        with self._lock:
            self._pending.extend(rows)
        if self._thread_pid != os.getpid():  # none yet, or one started before a fork (gone in this process)
            self._start_writer()
        self._wake.set()

    def _start_writer(self) -> None:
        with self._lock:
            if self._thread_pid == os.getpid():
                return
            self._thread_pid = os.getpid()
            self._wake = threading.Event()
            self._write_lock = threading.Lock()
        threading.Thread(target=self._run, name="cielo-activity-log", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Stores what is queued (the writer thread's work; a query calls it first to read its own writes)."""
        with self._write_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            now = self.clock.now()
            purge = None
            if now - self._last_purge >= PURGE_EVERY_S:
                purge, self._last_purge = now - self.retention_s, now
            if not rows and purge is None:
                return
            try:
                self._repo.add(rows, purge)
            except Exception:  # the log must never fail a request; the failure is logged (without the rows)
                log.exception("activity log: %d events could not be stored", len(rows))

    def ping(self) -> None:
        self._repo.ping()

    def purge(self) -> int:
        """Deletes events older than the retention now (also done hourly by the writer)."""
        self._last_purge = self.clock.now()
        return self._repo.purge(self._last_purge - self.retention_s)

    # ------------------------------------------------------------------ queries
    def page(self, subscription_id: str, tenant_id: str, flt: EventFilter, *, tenant_events: bool,
             after: tuple[float, str] | None = None, size: int = PAGE_SIZE) -> ActivityPage:
        self.flush()
        query = ActivityQuery(subscription_id, tenant_id, flt.start, flt.end, tenant_events, flt.resource_group,
                              flt.resource_uri, flt.resource_provider, flt.correlation_id, flt.caller, flt.status,
                              after)
        rows = self._repo.query(query, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return ActivityPage(rows, rows[-1] if more else None)
