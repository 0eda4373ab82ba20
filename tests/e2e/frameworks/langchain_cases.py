"""langchain-openai's AzureChatOpenAI and AzureOpenAIEmbeddings against Cielo, with Entra tokens
(`azure_ad_token_provider`), each with its defaults unless a case says otherwise."""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import langchain_openai
from cases_common import API_VERSION, CHAT, EMBED, ENDPOINT, WEATHER_QUESTION, TokenProvider, main
from langchain_openai import AzureChatOpenAI, AzureOpenAIEmbeddings
from pydantic import BaseModel, Field

provider = TokenProvider()
CITY_JSON = '{"name": "Paris", "country": "France"}'


class GetWeather(BaseModel):
    """The current weather in a city."""

    city: str = Field(description="The city's name")


class City(BaseModel):
    """A city and its country."""

    name: str
    country: str


def llm(max_tokens: int = 16) -> AzureChatOpenAI:
    return AzureChatOpenAI(azure_endpoint=ENDPOINT, azure_deployment=CHAT, api_version=API_VERSION,
                           azure_ad_token_provider=provider, max_tokens=max_tokens, temperature=0, max_retries=0)


def invoke() -> dict[str, Any]:
    message = llm().invoke("Say hello.")
    return {"version": langchain_openai.__version__ if hasattr(langchain_openai, "__version__") else None,
            "content": message.content, "finish_reason": message.response_metadata.get("finish_reason"),
            "usage": message.usage_metadata, "token_calls": provider.calls}


def stream() -> dict[str, Any]:
    """stream_usage is on by default (no custom client or base URL): the stream asks for usage. langchain-core
    ends every stream with an empty chunk of its own (chunk_position "last"); the model's chunks come before."""
    chunks = list(llm().stream("Say hello."))
    whole = reduce(lambda a, b: a + b, chunks)
    from_model = [c for c in chunks if not (c.chunk_position == "last" and not c.content and not c.usage_metadata)]
    return {"text": whole.content, "last_usage": from_model[-1].usage_metadata, "usage": whole.usage_metadata,
            "chunks_with_usage": sum(1 for c in chunks if c.usage_metadata),
            "end_marker": len(chunks) - len(from_model)}


def bind_tools() -> dict[str, Any]:
    message = llm(60).bind_tools([GetWeather], tool_choice="GetWeather").invoke(WEATHER_QUESTION)
    return {"tool_calls": [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in message.tool_calls],
            "invalid_tool_calls": message.invalid_tool_calls,
            "parsed": [GetWeather(**c["args"]).model_dump() for c in message.tool_calls]}


def structured(method: str) -> dict[str, Any]:
    prompt = f"Which city is the capital of France? Answer with this JSON object: {CITY_JSON}"
    result = llm(60).with_structured_output(City, method=method).invoke(prompt)
    return {"type": type(result).__name__, "value": result.model_dump() if isinstance(result, City) else result}


def embeddings() -> dict[str, Any]:
    """Defaults: check_embedding_ctx_length is on, so the texts go out as tiktoken token arrays."""
    model = AzureOpenAIEmbeddings(azure_endpoint=ENDPOINT, azure_deployment=EMBED, api_version=API_VERSION,
                                  azure_ad_token_provider=provider, max_retries=0)
    documents = model.embed_documents(["The quick brown fox", "A lazy dog"])
    query = model.embed_query("The quick brown fox")
    # The same text sent as text, by the openai client underneath: the deployment must read the token arrays as it.
    as_text = model.client.create(input=["The quick brown fox"], model=EMBED, encoding_format="float").data[0]
    return {"check_embedding_ctx_length": model.check_embedding_ctx_length,
            "tokens_read_as_text": all(math.isclose(a, b, abs_tol=1e-5)
                                       for a, b in zip(documents[0], as_text.embedding, strict=True)),
            "dimensions": [len(v) for v in documents], "query_dimensions": len(query),
            "norms": [math.sqrt(sum(x * x for x in v)) for v in documents],
            "same_text_same_vector": all(math.isclose(a, b, abs_tol=1e-5) for a, b in zip(documents[0], query))}


if __name__ == "__main__":
    main({"invoke": invoke, "stream": stream, "bind_tools": bind_tools,
          "function_calling": lambda: structured("function_calling"), "json_mode": lambda: structured("json_mode"),
          "json_schema": lambda: structured("json_schema"), "embeddings": embeddings})
