"""The openai SDK against Cielo with Entra tokens: run by the main venv's Python (openai 1.x) and by the
frameworks venv's (openai 2.x), the same calls for both."""

from __future__ import annotations

import json
from typing import Any

import openai
from cases_common import API_VERSION, CHAT, ENDPOINT, WEATHER_QUESTION, TokenProvider, main
from openai import AzureOpenAI

RESPONSES_API_VERSION = "2025-04-01-preview"  # the classic route's Responses API: 2025-03-01-preview or later
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
HI = [{"role": "user", "content": "Say hello."}]
provider = TokenProvider()


def client(api_version: str = API_VERSION) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=ENDPOINT, api_version=api_version, azure_ad_token_provider=provider,
                       max_retries=0)


def chat() -> dict[str, Any]:
    answer = client().chat.completions.create(model=CHAT, messages=HI, max_tokens=8)
    return {"version": openai.__version__, "content": answer.choices[0].message.content,
            "finish_reason": answer.choices[0].finish_reason, "usage": answer.usage.model_dump() if answer.usage
            else None, "token_calls": provider.calls}


def stream_usage() -> dict[str, Any]:
    chunks = list(client().chat.completions.create(model=CHAT, messages=HI, max_tokens=8,
                                                   stream=True, stream_options={"include_usage": True}))
    return {"version": openai.__version__,
            "text": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
            "usage": [c.usage.model_dump() for c in chunks if c.usage is not None],
            "last_has_choices": bool(chunks[-1].choices),
            "finish_reasons": [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason],
            "token_calls": provider.calls}


def tools() -> dict[str, Any]:
    """A forced tool call, then the conversation with the tool's result answered in text."""
    azure = client()
    messages: list[Any] = [{"role": "user", "content": WEATHER_QUESTION}]
    first = azure.chat.completions.create(model=CHAT, messages=messages, tools=[WEATHER_TOOL],
                                          tool_choice={"type": "function", "function": {"name": "get_weather"}},
                                          max_tokens=60, temperature=0)
    message = first.choices[0].message
    calls = message.tool_calls or []
    messages.append(message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"})
    second = azure.chat.completions.create(model=CHAT, messages=messages, tools=[WEATHER_TOOL],
                                           max_tokens=16, temperature=0)
    return {"version": openai.__version__, "finish_reason": first.choices[0].finish_reason,
            "tool_calls": [{"id": c.id, "type": c.type, "name": c.function.name,
                            "arguments": json.loads(c.function.arguments)} for c in calls],
            "followup": second.choices[0].message.content, "followup_finish": second.choices[0].finish_reason}


def responses() -> dict[str, Any]:
    azure = client(RESPONSES_API_VERSION)
    whole = azure.responses.create(model=CHAT, input="Say hello.", max_output_tokens=16)
    events = list(azure.responses.create(model=CHAT, input="Say hello.", max_output_tokens=16, stream=True))
    # max_output_tokens may cut the answer short: then the response is "incomplete", as OpenAI's are.
    done = [e for e in events if e.type in ("response.completed", "response.incomplete")]
    return {"version": openai.__version__, "object": whole.object, "status": whole.status,
            "incomplete_details": whole.incomplete_details.model_dump() if whole.incomplete_details else None,
            "output_text": whole.output_text, "usage": whole.usage.model_dump() if whole.usage else None,
            "event_types": [e.type for e in events],
            "streamed_text": "".join(e.delta for e in events if e.type == "response.output_text.delta"),
            "completed_text": done[0].response.output_text if done else None}


if __name__ == "__main__":
    main({"chat": chat, "stream_usage": stream_usage, "tools": tools, "responses": responses})
