"""The activity log's `$filter` and `$select` parsers, the metrics gate, and the data-plane route template."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from cielo.control.activity import parse_filter, parse_select, parse_time, read_skip_token, skip_token
from cielo.errors import BadRequest
from cielo.observability.http import dataplane_template
from cielo.observability.routes import expected_digest, may_read_metrics
from cielo.store.activity import ActivityRow

NOW = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC).timestamp()


def test_times_as_azure_clients_send_them() -> None:
    assert parse_time("2026-05-01T12:00:00Z") == NOW
    assert parse_time("2026-05-01T12:00:00.1234567Z") == pytest.approx(NOW + 0.123456)
    assert parse_time("2026-05-01T14:00:00+02:00") == NOW
    assert parse_time("2026-05-01T12:00:00") == NOW
    assert parse_time("2026-05-01") == NOW - 12 * 3600
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_a_full_filter() -> None:
    flt = parse_filter("eventTimestamp ge '2026-04-30T12:00:00Z' AND eventTimestamp le '2026-05-01T11:00:00Z' "
                       "and resourceGroupName eq 'My-RG' and caller eq 'o''brien@x' and status eq 'failed'", NOW)
    assert (flt.start, flt.end) == (NOW - 86400, NOW - 3600)
    assert flt.resource_group == "My-RG" and flt.caller == "o'brien@x" and flt.status == "Failed"
    only_start = parse_filter("eventTimestamp ge '2026-05-01T00:00:00Z'", NOW)
    assert only_start.end == NOW
    assert parse_filter("eventTimestamp ge '2026-05-01T00:00:00Z' and correlationId eq 'a and b'",
                        NOW).correlation_id == "a and b"
    assert parse_filter("eventTimestamp ge '2026-05-01' and resourceUri eq '/x'", NOW).resource_uri == "/x"


@pytest.mark.parametrize(("text", "words"), [
    (None, "eventTimestamp ge"),
    ("", "eventTimestamp ge"),
    ("eventTimestamp le '2026-05-01T00:00:00Z'", "eventTimestamp ge"),
    ("eventTimestamp eq '2026-05-01T00:00:00Z'", "ge and le"),
    ("eventTimestamp ge '2026-01-01T00:00:00Z'", "90 days"),
    ("eventTimestamp ge '2026-01-01T00:00:00Z' and eventTimestamp le '2026-01-02T00:00:00Z'", "90 days"),
    ("eventTimestamp ge '2026-05-01T10:00:00Z' and eventTimestamp le '2026-05-01T09:00:00Z'", "before"),
    ("eventTimestamp ge '2026-05-01T10:00:00Z' and levels eq 'Error'", "'levels'"),
    ("eventTimestamp ge '2026-05-01T10:00:00Z' and caller ne 'x'", "cannot read"),
    ("eventTimestamp ge '2026-05-01T10:00:00Z' and status eq 'Done'", "Started, Succeeded, Failed"),
    ("eventTimestamp ge '2026-05-01T10:00:00Z' and caller eq 'a' and caller eq 'b'", "twice"),
    ("eventTimestamp ge '2026-05-01T10:00:00Z' or caller eq 'a'", "cannot read"),
])
def test_refused_filters_name_the_problem(text: str | None, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_filter(text, NOW)
    assert words in caught.value.message and caught.value.status == 400 and caught.value.code == "BadRequest"


def test_select() -> None:
    assert parse_select(None) is None and parse_select(" ") is None
    assert parse_select("eventTimestamp, OPERATIONNAME") == ("eventTimestamp", "operationName")
    with pytest.raises(BadRequest, match="'token'"):
        parse_select("caller,token")


def test_skip_tokens_round_trip() -> None:
    row = ActivityRow("id-1", "t", "s", 1234.5678, "Administrative", "Informational", "op", "Started", "c", "x",
                      "/r", "", "", {})
    assert read_skip_token(skip_token(row)) == (1234.5678, "id-1")
    with pytest.raises(BadRequest):
        read_skip_token("not base64!")


def test_metrics_gate() -> None:
    digest = expected_digest("tok", None)
    assert digest == hashlib.sha256(b"tok").hexdigest() and expected_digest(None, "ABC") == "abc"
    assert expected_digest(None, None) is None
    assert may_read_metrics("127.0.0.1", None, None) and may_read_metrics("::1", None, None)
    assert not may_read_metrics("10.0.0.1", None, digest)
    assert not may_read_metrics("10.0.0.1", "Bearer tok", None)
    assert not may_read_metrics("10.0.0.1", "Bearer nope", digest)
    assert not may_read_metrics("10.0.0.1", "Basic tok", digest)
    assert may_read_metrics("10.0.0.1", "bearer tok", digest)
    assert not may_read_metrics(None, "Bearer nope", digest)


def test_dataplane_route_templates() -> None:
    assert dataplane_template("/accounts/a1/openai/deployments/d1/chat/completions") == \
        "/accounts/{account}/openai/deployments/{deployment}/chat/completions"
    assert dataplane_template("/accounts/a1/openai/v1/responses/resp_1/input_items") == \
        "/accounts/{account}/openai/v1/responses/{response_id}/input_items"
    assert dataplane_template("/accounts/a1/openai/v1/chat/completions") == \
        "/accounts/{account}/openai/v1/chat/completions"
