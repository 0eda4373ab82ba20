"""What the app answers for requests no route serves, in-process: an unknown path (404) and a method a route does
not take (405), in the `{"error": {"code", "message"}}` shape, never Starlette's plain text."""

from __future__ import annotations

import httpx
import pytest
from inproc import World


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/no/such/path", 404, "NotFound"),
    ("GET", "/{tenant}/oauth2/v2.0/token", 405, "MethodNotAllowed"),
    ("DELETE", "/common/discovery/instance", 405, "MethodNotAllowed"),
    ("PUT", "/{tenant}/v2.0/.well-known/openid-configuration", 405, "MethodNotAllowed"),
])
async def test_unserved_requests_get_the_json_error_shape(client: httpx.AsyncClient, world: World, method: str,
                                                          path: str, status: int, code: str) -> None:
    answer = await client.request(method, path.format(tenant=world.tenant))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
