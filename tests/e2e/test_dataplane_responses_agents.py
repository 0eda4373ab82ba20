"""The openai-agents SDK, unchanged, on its default model path (the Responses API) against a real `cielo up`:
an Agent with a function tool, its client an `AsyncAzureOpenAI` with an Entra token from azure-identity's
`get_bearer_token_provider`, installed with `set_default_openai_client`.

openai-agents needs openai 2.x and the project pins openai<2, so the SDK lives in a virtual environment of its own,
made once and kept under ~/.cache/cielo (a later run reuses it); the agent runs there as a script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest_dataplane import CHAT, COGNITIVE_SCOPE, MOCK_DEPLOYMENT, DataPlane

pytest_plugins = ("conftest_dataplane",)
pytestmark = pytest.mark.e2e

AGENTS = "openai-agents==0.24.0"
PREVIEW = "2025-03-01-preview"

AGENT_SCRIPT = '''
import asyncio
import json
import os

from azure.identity.aio import ClientSecretCredential, get_bearer_token_provider
from openai import AsyncAzureOpenAI

from agents import Agent, ModelSettings, Runner, function_tool, set_default_openai_client, set_tracing_disabled

calls = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    calls.append(city)
    return f"It is sunny in {city}."


async def main() -> None:
    credential = ClientSecretCredential(os.environ["TENANT"], os.environ["CLIENT_ID"], os.environ["CLIENT_SECRET"],
                                        authority=os.environ["AUTHORITY"], disable_instance_discovery=True)
    client = AsyncAzureOpenAI(azure_endpoint=os.environ["ENDPOINT"], api_version=os.environ["API_VERSION"],
                              azure_ad_token_provider=get_bearer_token_provider(credential, os.environ["SCOPE"]))
    set_default_openai_client(client, use_for_tracing=False)
    set_tracing_disabled(True)
    settings = ModelSettings(max_tokens=64, temperature=0, tool_choice=os.environ.get("TOOL_CHOICE") or None)
    agent = Agent(name="weather", instructions="Answer with the weather tool.", model=os.environ["DEPLOYMENT"],
                  tools=[get_weather], model_settings=settings)
    question = "What is the weather in Paris?"
    if os.environ.get("STREAM"):
        result = Runner.run_streamed(agent, question, max_turns=4)
        kinds = [event.type async for event in result.stream_events()]
        assert "raw_response_event" in kinds and "run_item_stream_event" in kinds, kinds
    else:
        result = await Runner.run(agent, question, max_turns=4)
    print(json.dumps({"final": result.final_output, "calls": calls,
                      "items": [item.type for item in result.new_items],
                      "responses": [r.response_id for r in result.raw_responses]}))
    await client.close()
    await credential.close()


asyncio.run(main())
'''


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cielo" / AGENTS.replace("==", "-")


@pytest.fixture(scope="session")
def agents_python() -> Path:
    """A virtual environment with openai-agents and azure-identity (its async credentials need aiohttp), kept
    between runs."""
    venv = _cache()
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import agents, azure.identity.aio, aiohttp"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    building = venv.with_name(venv.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    made = subprocess.run([sys.executable, "-m", "venv", str(building)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"python -m venv failed: {made.stderr[-500:]}")
    pip = subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", AGENTS, "azure-identity", "aiohttp"],
                         capture_output=True, text=True, timeout=900)
    if pip.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"pip could not install {AGENTS}: {pip.stderr[-800:]}")
    shutil.rmtree(venv, ignore_errors=True)
    building.rename(venv)  # whole or not at all: a run cut short leaves no half-made environment behind
    return python


def _run_agent(dataplane: DataPlane, python: Path, tmp_path: Path, deployment: str, tool_choice: str = "",
               stream: bool = False) -> dict[str, Any]:
    script = tmp_path / "agent.py"
    script.write_text(AGENT_SCRIPT)
    app = dataplane.app  # holds Cognitive Services OpenAI User
    env = {**dataplane.client_env(), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "TENANT": dataplane.server.tenant_id, "CLIENT_ID": app["appId"], "CLIENT_SECRET": app["secret"],
           "AUTHORITY": dataplane.server.base_url, "ENDPOINT": dataplane.endpoint, "API_VERSION": PREVIEW,
           "SCOPE": COGNITIVE_SCOPE, "DEPLOYMENT": deployment, "TOOL_CHOICE": tool_choice,
           "STREAM": "1" if stream else ""}
    completed = subprocess.run([str(python), str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("stream", [False, True], ids=["run", "run_streamed"])
def test_agent_with_a_function_tool(dataplane: DataPlane, agents_python: Path, tmp_path: Path, stream: bool) -> None:
    """The mock model calls the tool when the user asks, then answers from the tool's output: the whole loop of
    function_call, function_call_output and a final message goes through the Responses API (streamed too)."""
    result = _run_agent(dataplane, agents_python, tmp_path, MOCK_DEPLOYMENT, stream=stream)
    assert len(result["calls"]) == 1, result
    assert result["items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"], result
    assert "It is sunny in" in result["final"], result
    assert all(r.startswith("resp_") for r in result["responses"]) and len(result["responses"]) == 2


def test_agent_on_smollm2(dataplane: DataPlane, agents_python: Path, tmp_path: Path) -> None:
    """The embedded SmolLM2, made to call the tool (tool_choice required on the first turn; the SDK resets it
    after a tool call), then answering in text."""
    result = _run_agent(dataplane, agents_python, tmp_path, CHAT, tool_choice="required")
    assert len(result["calls"]) >= 1 and all(isinstance(c, str) for c in result["calls"]), result
    assert result["items"][0] == "tool_call_item" and result["items"][-1] == "message_output_item", result
    assert isinstance(result["final"], str) and result["final"].strip(), result
