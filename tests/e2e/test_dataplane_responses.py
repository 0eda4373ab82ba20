"""The Responses API end to end: the unmodified openai SDK (`client.responses.create`, `.stream`, `.parse`,
`previous_response_id`, retrieve, delete) against a real `cielo up` and the embedded SmolLM2, with an Entra token
from azure-identity's `get_bearer_token_provider`, on the preview route (AzureOpenAI with api_version
2025-03-01-preview: `openai/responses?api-version=…`) and on the v1 route (`OpenAI(base_url=…/openai/v1/)`).

The callers hold "Cognitive Services OpenAI User", whose data actions include Azure's `…/OpenAI/responses/*`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from azure.identity import ClientSecretCredential, get_bearer_token_provider
from conftest_dataplane import CHAT, COGNITIVE_SCOPE, OPENAI_USER, DataPlane
from openai import AzureOpenAI, OpenAI
from pydantic import BaseModel

pytest_plugins = ("conftest_dataplane",)
pytestmark = pytest.mark.e2e

PREVIEW = "2025-03-01-preview"
MODEL_NAME = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def callers(dataplane: DataPlane) -> list[dict[str, Any]]:
    """Two service principals allowed to create responses on the account."""
    return [dataplane.app, dataplane.new_app("responses", role=OPENAI_USER)]


def _credential(dataplane: DataPlane, app: dict[str, Any]) -> ClientSecretCredential:
    return ClientSecretCredential(dataplane.server.tenant_id, app["appId"], app["secret"],
                                  authority=dataplane.server.base_url, disable_instance_discovery=True)


@pytest.fixture()
def client(dataplane: DataPlane, dp_env: dict[str, str], callers: list[dict[str, Any]]) -> Iterator[AzureOpenAI]:
    credential = _credential(dataplane, callers[0])
    with AzureOpenAI(azure_endpoint=dataplane.endpoint, api_version=PREVIEW,
                     azure_ad_token_provider=get_bearer_token_provider(credential, COGNITIVE_SCOPE)) as azure:
        yield azure
    credential.close()


def _v1(dataplane: DataPlane, app: dict[str, Any]) -> OpenAI:
    """The v1 route with the stock client: the Entra token as its api_key (sent as `Authorization: Bearer`)."""
    return OpenAI(base_url=f"{dataplane.endpoint}openai/v1/", api_key=dataplane.sp_token(app))


def test_create_on_the_preview_route(client: AzureOpenAI) -> None:
    raw = client.responses.with_raw_response.create(model=CHAT, input="Say hello.", max_output_tokens=32,
                                                    temperature=0, instructions="Answer in one short sentence.")
    assert raw.http_response.url.path.endswith("/openai/responses")
    assert raw.http_response.url.params["api-version"] == PREVIEW
    assert raw.http_response.headers["apim-request-id"]
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response" and response.model == MODEL_NAME
    assert response.status in ("completed", "incomplete")
    assert response.output_text.strip()
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.instructions == "Answer in one short sentence." and response.max_output_tokens == 32
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and 0 < usage.output_tokens <= 32
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_max_output_tokens_makes_an_incomplete_response(client: AzureOpenAI) -> None:
    response = client.responses.create(model=CHAT, input="Write a long story about a dragon and a knight.",
                                       max_output_tokens=16, temperature=0)
    assert response.status == "incomplete", response
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    assert response.output_text


def test_previous_response_id_retrieve_and_delete_on_v1(dataplane: DataPlane, dp_env: dict[str, str],
                                                        callers: list[dict[str, Any]]) -> None:
    with _v1(dataplane, callers[0]) as v1, _v1(dataplane, callers[1]) as other:
        first = v1.responses.create(model=CHAT, input="My name is Ada. Remember it.", max_output_tokens=24,
                                    temperature=0)
        second = v1.responses.create(model=CHAT, input="What is my name?", previous_response_id=first.id,
                                     max_output_tokens=24, temperature=0)
        assert second.previous_response_id == first.id and second.output_text
        # The second one read the first turn too: its prompt is longer than the question alone.
        alone = v1.responses.create(model=CHAT, input="What is my name?", max_output_tokens=16, store=False)
        assert second.usage is not None and alone.usage is not None
        assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens  # type: ignore[union-attr]

        assert v1.responses.retrieve(second.id).model_dump() == second.model_dump()
        items = v1.responses.input_items.list(second.id)
        assert [item.type for item in items.data] == ["message"]
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(first.id)  # another caller's response is unknown to it
        with pytest.raises(openai.NotFoundError):
            other.responses.create(model=CHAT, input="x", previous_response_id=first.id, max_output_tokens=16)
        with pytest.raises(openai.NotFoundError):
            v1.responses.retrieve(alone.id)  # store=False: never kept

        v1.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            v1.responses.retrieve(first.id)


def test_stream_helper_and_raw_events(client: AzureOpenAI) -> None:
    deltas: list[str] = []
    # Room enough to finish: the SDK's stream helper takes only response.completed for a final response, not the
    # response.incomplete a cut answer ends with (openai/openai-python#3538).
    with client.responses.stream(model=CHAT, input="Name three colours.", max_output_tokens=256,
                                 temperature=0) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert deltas and final.output_text == "".join(deltas)
    assert final.status == "completed" and final.usage is not None and final.usage.output_tokens > 0
    assert client.responses.retrieve(final.id).output_text == final.output_text

    events = list(client.responses.create(model=CHAT, input="Say hi.", max_output_tokens=16, temperature=0,
                                          stream=True))
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed" if events[-1].response.status == "completed" else "response.incomplete"]
    assert [event.sequence_number for event in events] == list(range(len(events)))


class City(BaseModel):
    name: str
    country: str


def test_parse_with_a_pydantic_model(client: AzureOpenAI) -> None:
    parsed = client.responses.parse(model=CHAT, input="Give a city and its country as JSON.", text_format=City,
                                    max_output_tokens=64, temperature=0)
    assert parsed.status == "completed", parsed
    city = parsed.output_parsed
    assert isinstance(city, City) and city.name and city.country
    assert parsed.text is not None and parsed.text.format.type == "json_schema"


def test_unserved_fields_are_refused_by_name(client: AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=CHAT, input="x", tools=[{"type": "web_search_preview"}])
    assert refused.value.body["param"] == "tools[0].type"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=CHAT, input="x", reasoning={"effort": "high"})
    assert refused.value.body["param"] == "reasoning"  # type: ignore[index]
