"""The Responses API's classic route (`openai/responses?api-version=…`) takes its api-version from the same table as
the other data-plane routes (`cielo.api.openai.api_version`): a version they refuse is refused here too, with the
same answer, before any preview older than the Responses API's first is turned away."""

from __future__ import annotations

import httpx
import pytest
from inproc import ACCOUNT, MOCK_DEPLOYMENT, World, error_of

PREVIEW = f"/accounts/{ACCOUNT}/openai/responses"
CHAT = f"/accounts/{ACCOUNT}/openai/deployments/{MOCK_DEPLOYMENT}/chat/completions"


@pytest.mark.parametrize("version", ["2025-13-45-preview", "2025-02-30x-preview", "2099-01-01-preview",
                                     "2025-03-01-PREVIEW", "2025-03-01-preview "])
async def test_versions_the_data_plane_refuses_are_refused_here(client: httpx.AsyncClient, world: World,
                                                                version: str) -> None:
    headers = {"api-key": world.api_key}
    chat = await client.post(CHAT, params={"api-version": version},
                             json={"messages": [{"role": "user", "content": "x"}]}, headers=headers)
    responses = await client.post(PREVIEW, params={"api-version": version},
                                  json={"model": MOCK_DEPLOYMENT, "input": "x"}, headers=headers)
    error_of(chat, 404, "UnsupportedApiVersion")
    error_of(responses, 404, "UnsupportedApiVersion")


@pytest.mark.parametrize("version", ["2025-03-01-preview", "2025-04-01-preview", "2026-01-15-preview"])
async def test_previews_from_the_first_with_responses_are_served(client: httpx.AsyncClient, world: World,
                                                                 version: str) -> None:
    answer = await client.post(PREVIEW, params={"api-version": version},
                               json={"model": MOCK_DEPLOYMENT, "input": "x", "store": False},
                               headers={"api-key": world.api_key})
    assert answer.status_code == 200, answer.text
    assert answer.json()["object"] == "response"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_retrieve_and_delete_check_the_same_table(client: httpx.AsyncClient, world: World, method: str) -> None:
    for path in ("/resp_0000", "/resp_0000/input_items") if method == "GET" else ("/resp_0000",):
        answer = await client.request(method, PREVIEW + path, params={"api-version": "2025-02-31-preview"},
                                      headers={"api-key": world.api_key})
        error_of(answer, 404, "UnsupportedApiVersion")
