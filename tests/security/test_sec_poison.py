"""Poisoned text: a lone UTF-16 surrogate must not get stored, and one already stored must not break listings.

The report: a resource-group PUT with the tag value "\\ud800" answered 500 but was committed; from then on the
group's GET, the group list and `.../resources` answered 500 for everyone, across restarts. Graph display names,
chat content and embeddings inputs gave 500 too.

Against the session's real `cielo up`, per surface (resource manager, directory API, data plane, token endpoint):
- every variant (high, low, reversed pair, high before a letter, after an escaped backslash, as UTF-8 bytes), as a
  value and as a key, is 400 in the surface's envelope, and nothing was written;
- a valid pair (an emoji) is accepted and round-trips;
- `%ED%A0%80` in a path, a query string or a form value is no 500;
- a row written with a lone surrogate straight into the server's SQLite file (as an older release could store
  it) leaves the group list, the group and its resources readable;
- the server's log shows none of the failures the report saw.
"""

from __future__ import annotations

import http.client
import socket
import sqlite3
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from arm_support import Arm, new_name

from support.server import CLI_CLIENT_ID, CieloServer

pytestmark = pytest.mark.e2e

ARM_API = "2022-12-01"
OPENAI_API = "2024-10-21"
ACCOUNT = "cielo-openai"
DEPLOYMENT = "smollm2"
LONE = {
    "high": b'"\\ud800"',
    "low": b'"\\udc00"',
    "reversed pair": b'"\\udc00\\ud800"',
    "high then a letter": b'"\\uD83Dx"',
    "after an escaped backslash": b'"\\\\\\ud800"',
    "utf-8 bytes": b'"\xed\xa0\x80"',
}
EMOJI = b'"\\ud83d\\ude00"'


def variants(template: bytes) -> Iterator[tuple[str, bytes]]:
    """`template` with each lone surrogate as VALUE, then as the key KEY."""
    for name, text in LONE.items():
        yield f"{name} (value)", template.replace(b"VALUE", text)
        yield f"{name} (key)", template.replace(b"VALUE", b'"x"').replace(b'"KEY"', text)


def arm_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and set(error) <= {"code", "message", "target", "details"}, response.text
    return str(error["message"])


@pytest.fixture(scope="module")
def arm(cielo_server: CieloServer) -> Iterator[Arm]:
    client = Arm(cielo_server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def graph_headers(cielo_server: CieloServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {cielo_server.admin_token()}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def api_key(arm: Arm) -> str:
    keys = arm.call("POST", f"{arm.rg_path('cielo-rg')}/providers/Microsoft.CognitiveServices/accounts/{ACCOUNT}"
                    "/listKeys", arm.admin, api_version="2023-05-01")
    assert keys.status_code == 200, keys.text
    return str(keys.json()["key1"])


# ----------------------------------------------------------------------------- resource manager
def test_resource_manager_refuses_lone_surrogates_and_stores_nothing(arm: Arm) -> None:
    template = b'{"location": "local", "tags": {"KEY": VALUE}, "properties": {"x": [[{"KEY": VALUE}]]}}'
    for name, body in variants(template):
        group = new_name("poison")
        response = arm.call("PUT", arm.rg_path(group), arm.admin, content=body, api_version=ARM_API)
        assert "surrogate" in arm_error(response, 400, "InvalidRequestContent"), name
        assert arm.call("GET", arm.rg_path(group), arm.admin, api_version=ARM_API).status_code == 404, name
    listing = arm.call("GET", f"{arm.sub_path}/resourcegroups", arm.admin, api_version=ARM_API)
    assert listing.status_code == 200, listing.text


def test_resource_manager_round_trips_a_valid_pair(arm: Arm) -> None:
    group = new_name("emoji")
    body = b'{"location": "local", "tags": {"escaped": ' + EMOJI + b', "raw": "\xf0\x9f\x98\x80", ' + EMOJI + \
        b': "key", "literal": "\\\\ud800"}}'
    created = arm.call("PUT", arm.rg_path(group), arm.admin, content=body, api_version=ARM_API)
    assert created.status_code == 201, created.text
    fetched = arm.call("GET", arm.rg_path(group), arm.admin, api_version=ARM_API)
    assert fetched.json()["tags"] == {"escaped": "\U0001f600", "raw": "\U0001f600", "\U0001f600": "key",
                                      "literal": "\\ud800"}


def test_paths_and_queries_cannot_carry_a_surrogate(arm: Arm) -> None:
    missing = arm.client.get(f"{arm.sub_path}/resourcegroups/%ED%A0%80?api-version={ARM_API}",
                             headers={"Authorization": f"Bearer {arm.admin.token}"})
    assert "\ufffd" in arm_error(missing, 404, "ResourceGroupNotFound")
    version = arm.client.get(f"{arm.sub_path}/resourcegroups?api-version=%ED%A0%80",
                             headers={"Authorization": f"Bearer {arm.admin.token}"})
    assert version.status_code == 400, version.text
    # The surrogate's bytes raw in the request line (not percent-encoded) are refused by the HTTP server.
    status = raw_status(arm.server, b"GET " + arm.sub_path.encode() + b"/resourcegroups/\xed\xa0\x80?api-version="
                        + ARM_API.encode() + b" HTTP/1.1", {"Authorization": f"Bearer {arm.admin.token}"})
    assert status in (400, 404), status


def raw_status(server: CieloServer, request_line: bytes, headers: dict[str, str]) -> int:
    """The status of a request sent byte for byte (clients refuse to send non-ASCII request lines)."""
    context = ssl.create_default_context(cafile=server.bundle)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        head = [f"Host: 127.0.0.1:{server.port}", *(f"{k}: {v}" for k, v in headers.items()), "Connection: close"]
        tls.sendall(request_line + b"\r\n" + "\r\n".join(head).encode() + b"\r\n\r\n")
        answer = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        answer.begin()
        answer.read()
        return answer.status


# ----------------------------------------------------------------------------- directory API
def test_directory_refuses_lone_surrogates_and_stores_nothing(arm: Arm, graph_headers: dict[str, str]) -> None:
    nickname = new_name("poison")
    template = b'{"displayName": VALUE, "mailNickname": "' + nickname.encode() + b'", "KEY": "x"}'
    headers = graph_headers
    for name, body in variants(template):
        response = arm.client.post("/v1.0/groups", headers=headers, content=body)
        assert "surrogate" in arm_error(response, 400, "BadRequest"), name
    found = arm.client.get(f"/v1.0/groups?$filter=mailNickname eq '{nickname}'", headers=headers)
    assert found.status_code == 200 and found.json()["value"] == [], found.text
    assert arm.client.get("/v1.0/groups", headers=headers).status_code == 200


def test_directory_round_trips_a_valid_pair(arm: Arm, graph_headers: dict[str, str]) -> None:
    nickname = new_name("emoji")
    created = arm.client.post("/v1.0/groups", headers=graph_headers,
                              content=b'{"displayName": "smile ' + EMOJI[1:-1] + b'", "mailNickname": "'
                              + nickname.encode() + b'"}')
    assert created.status_code == 201, created.text
    assert arm.graph("GET", f"/groups/{created.json()['id']}")["displayName"] == "smile \U0001f600"


# ----------------------------------------------------------------------------- data plane
@pytest.mark.parametrize(("route", "template"), [
    ("chat/completions", b'{"messages": [{"role": "user", "content": VALUE}], "max_tokens": 1, "user": "KEY"}'),
    ("chat/completions", b'{"messages": [{"role": "user", "content": "hi", "name": "n"}], "max_tokens": 1, '
                         b'"metadata": {"KEY": VALUE}}'),
    ("embeddings", b'{"input": ["ok", VALUE], "extra": {"KEY": 1}}'),
], ids=["chat content", "chat metadata", "embeddings input"])
def test_data_plane_refuses_lone_surrogates(cielo_server: CieloServer, api_key: str, route: str,
                                            template: bytes) -> None:
    deployment = DEPLOYMENT if route.startswith("chat") else "e5-small"
    with cielo_server.http() as client:
        for name, body in variants(template):
            response = client.post(f"/accounts/{ACCOUNT}/openai/deployments/{deployment}/{route}",
                                   params={"api-version": OPENAI_API}, content=body,
                                   headers={"api-key": api_key, "Content-Type": "application/json"})
            assert response.status_code == 400, (name, response.text)
            error = response.json()["error"]
            assert error["code"] == "BadRequest" and error["type"] == "invalid_request_error", error
            assert "surrogate" in error["message"] and response.headers["apim-request-id"], error


def test_data_plane_accepts_a_valid_pair(cielo_server: CieloServer, api_key: str) -> None:
    with cielo_server.http() as client:
        response = client.post(f"/accounts/{ACCOUNT}/openai/deployments/{DEPLOYMENT}/chat/completions",
                               params={"api-version": OPENAI_API}, headers={"api-key": api_key,
                                                                            "Content-Type": "application/json"},
                               content=b'{"messages": [{"role": "user", "content": "say ' + EMOJI[1:-1] + b'"}],'
                               b' "max_tokens": 1}')
    assert response.status_code == 200, response.text


# ----------------------------------------------------------------------------- token endpoint (forms)
def test_token_endpoint_refuses_an_encoded_surrogate(cielo_server: CieloServer) -> None:
    with cielo_server.http() as client:
        for form in ("client_id=%ED%A0%80&grant_type=client_credentials&scope=x",
                     f"client_id={CLI_CLIENT_ID}&grant_type=password&username=x&password=%ED%B0%80"):
            response = client.post(f"/{cielo_server.tenant_id}/oauth2/v2.0/token", content=form.encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert response.status_code == 400, response.text
            body = response.json()
            assert body["error"] == "invalid_request" and body["error_codes"] == [9002313], body


# ----------------------------------------------------------------------------- what an older release stored
def _poison(server: CieloServer, sql: str, *params: Any) -> None:
    with sqlite3.connect(server.data_dir / "cielo.db", timeout=30) as db:
        assert db.execute(sql, params).rowcount == 1


def test_rows_stored_with_a_lone_surrogate_do_not_break_listings(cielo_server: CieloServer, arm: Arm) -> None:
    group = new_name("legacy")
    created = arm.call("PUT", arm.rg_path(group), arm.admin, body={"location": "local", "tags": {"a": "b"}},
                       api_version=ARM_API)
    assert created.status_code == 201, created.text
    key = f"/subscriptions/{arm.sub}/resourcegroups/{group}".lower()
    # What `json.dumps` (ensure_ascii) wrote for a tag "\ud800" before the boundary refused it.
    _poison(cielo_server, "UPDATE resources SET tags = ? WHERE key = ?",
            '{"a": "\\ud800", "\\udc00": "b", "ok": "\\ud83d\\ude00"}', key)
    listing = arm.call("GET", f"{arm.sub_path}/resourcegroups", arm.admin, api_version=ARM_API)
    fetched = arm.call("GET", arm.rg_path(group), arm.admin, api_version=ARM_API)
    resources = arm.call("GET", f"{arm.rg_path(group)}/resources", arm.admin, api_version=ARM_API)
    assert listing.status_code == 200, listing.text
    listed = next(g for g in listing.json()["value"] if g["name"] == group)
    assert listed["tags"] == {"a": "\ufffd", "\ufffd": "b", "ok": "\U0001f600"}
    assert fetched.status_code == 200 and fetched.json()["tags"] == listed["tags"], fetched.text
    assert resources.status_code == 200, resources.text


def test_the_server_log_shows_no_encoding_failure(cielo_server: CieloServer, arm: Arm) -> None:
    # Runs after the tests above (file order): none of their requests may have failed inside the server.
    marker = uuid.uuid4().hex
    arm.call("GET", f"{arm.sub_path}/resourcegroups/{marker}", arm.admin, api_version=ARM_API)
    log = cielo_server.log_text()
    assert "UnicodeEncodeError" not in log and "surrogates not allowed" not in log
