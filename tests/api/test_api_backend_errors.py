"""BackendError is the backends' own error root (they know nothing of the API's envelopes): the data plane converts
it where it calls them (dataplane/service.py `_from_backend`), and creating a model's backend is one such call."""

from __future__ import annotations

from typing import NoReturn

import httpx
import pytest
from inproc import World, error_of

from cielo.backends.base import BackendError

CHAT = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}


async def test_a_backend_that_cannot_be_created_answers_in_the_data_plane_envelope(
        client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model file not installed: 503 ModelUnavailable with its message, streamed or not, never a 500."""
    def missing(entry: object) -> NoReturn:
        raise BackendError("The model file for 'smollm2' is not installed.", status=503, code="ModelUnavailable")

    monkeypatch.setattr(world.services.dataplane.backends, "for_model", missing)
    for stream in (False, True):
        answer = await client.post(world.openai_url("chat/completions", deployment="smollm2"),
                                   json={**CHAT, "stream": stream}, headers={"api-key": world.api_key})
        error = error_of(answer, 503, "ModelUnavailable")
        assert error["message"] == "The model file for 'smollm2' is not installed."
        assert answer.headers["x-ms-error-code"] == "ModelUnavailable"
