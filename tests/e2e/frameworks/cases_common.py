"""Shared by the case scripts: the environment the test sets (frameworks_support.Frameworks.env), Microsoft Entra
tokens for the test's service principal, and the one line of JSON a case prints for the test to check."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from azure.identity import ClientSecretCredential, get_bearer_token_provider

SCOPE = "https://cognitiveservices.azure.com/.default"
ENDPOINT = os.environ["CIELO_ENDPOINT"]  # https://127.0.0.1:PORT/accounts/cielo-openai/
API_VERSION = os.environ["CIELO_API_VERSION"]
CHAT = os.environ["CIELO_CHAT"]
EMBED = os.environ["CIELO_EMBED"]
TARGET = os.environ["CIELO_TARGET"]  # "embedded" (SmolLM2, e5) or "upstream" (the fake engine behind Cielo)
WEATHER_QUESTION = "What is the weather in Paris? Use the get_weather tool."


class TokenProvider:
    """azure-identity's bearer token provider for Azure OpenAI's scope, counting how often the client asked."""

    def __init__(self) -> None:
        self.calls = 0
        self._credential = ClientSecretCredential(
            os.environ["CIELO_TENANT"], os.environ["CIELO_CLIENT_ID"], os.environ["CIELO_CLIENT_SECRET"],
            authority=os.environ["CIELO_AUTHORITY"], disable_instance_discovery=True)
        self._provider = get_bearer_token_provider(self._credential, SCOPE)

    def __call__(self) -> str:
        self.calls += 1
        return self._provider()


def main(cases: dict[str, Callable[[], Any]]) -> None:
    """Run the cases named on the command line (comma-separated, or "all"), each whatever the others did, in one
    process (importing a framework takes seconds); print {case: {"result": ...} or {"error": traceback}} as one
    line of JSON."""
    names = list(cases) if sys.argv[1] == "all" else sys.argv[1].split(",")
    results: dict[str, Any] = {}
    for name in names:
        try:
            result = cases[name]()
            if inspect.isawaitable(result):
                result = asyncio.run(result)
            results[name] = {"result": result}
        except Exception:
            results[name] = {"error": traceback.format_exc()}
    print(json.dumps(results, default=str))
