"""llama-index's AzureOpenAI LLM and AzureOpenAIEmbedding against Cielo with Entra tokens
(`use_azure_ad=True, azure_ad_token_provider=`)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from cases_common import API_VERSION, CHAT, EMBED, ENDPOINT, WEATHER_QUESTION, TokenProvider, main
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.embeddings.azure_openai import AzureOpenAIEmbedding
from llama_index.llms.azure_openai import AzureOpenAI

provider = TokenProvider()
calls: list[str] = []


def get_weather(city: str) -> str:
    """The current weather in a city."""
    calls.append(city)
    return f"Sunny, 21 C in {city}"


TOOL = FunctionTool.from_defaults(fn=get_weather)


def llm() -> AzureOpenAI:
    # `model` names an OpenAI model so that llama-index knows its context window and that it calls functions;
    # `engine` is the deployment the calls go to, as with Azure.
    return AzureOpenAI(engine=CHAT, model="gpt-4o-mini", azure_endpoint=ENDPOINT, api_version=API_VERSION,
                       use_azure_ad=True, azure_ad_token_provider=provider, max_tokens=60, temperature=0,
                       max_retries=0, timeout=600)  # SmolLM2 on a busy 2-core machine can take minutes


def default_entra() -> dict[str, Any]:
    """llama-index's documented Entra setup, unchanged: with openai>=2.34 the token goes out as `api-key` beside
    `Authorization: Bearer` (llama-index hands it to openai as `api_key` too)."""
    answer = llm().chat([ChatMessage(role="user", content="Say hello.")])
    return {"content": answer.message.content}


def chat_with_tools() -> dict[str, Any]:
    model = llm()
    response = model.chat_with_tools([TOOL], user_msg=WEATHER_QUESTION, tool_required=True)
    selections = model.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    return {"version": version("llama-index-llms-azure-openai"),
            "selections": [{"id": s.tool_id, "name": s.tool_name, "kwargs": s.tool_kwargs} for s in selections],
            "token_calls": provider.calls}


def predict_and_call() -> dict[str, Any]:
    calls.clear()
    output = llm().predict_and_call([TOOL], user_msg=WEATHER_QUESTION, tool_required=True)
    return {"response": output.response, "calls": calls,
            "sources": [{"tool": s.tool_name, "kwargs": s.raw_input.get("kwargs"), "output": str(s.content),
                         "is_error": s.is_error} for s in output.sources]}


def embeddings() -> dict[str, Any]:
    model = AzureOpenAIEmbedding(deployment_name=EMBED, azure_endpoint=ENDPOINT, api_version=API_VERSION,
                                 use_azure_ad=True, azure_ad_token_provider=provider, max_retries=0)
    vectors = model.get_text_embedding_batch(["The quick brown fox", "A lazy dog"])
    query = model.get_query_embedding("The quick brown fox")
    return {"dimensions": [len(v) for v in vectors], "query_dimensions": len(query)}


if __name__ == "__main__":
    main({"default_entra": default_entra, "chat_with_tools": chat_with_tools, "predict_and_call": predict_and_call,
          "embeddings": embeddings})
