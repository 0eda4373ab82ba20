"""The health check of an OpenAI-compatible upstream in a pool: one cheap GET (by default `/models`, which
vLLM, llama.cpp's server, Ollama, Azure OpenAI's v1 API and Cielo all serve) with the upstream's credential.
A 2xx is healthy; anything else (another status, no connection, no answer in the pool's health timeout)
raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from cielo.backends.pool import Probe

Headers = Callable[[], Awaitable[dict[str, str]]]


class ProbeFailed(Exception):
    pass


def http_probe(base_url: str, path: str, headers: Headers, *, ssl: Any = None) -> Probe:
    url = base_url.rstrip("/") + "/" + path.lstrip("/")

    async def probe() -> None:
        connector = aiohttp.TCPConnector(ssl=ssl if ssl is not None else True, force_close=True)
        sent = await headers()
        async with aiohttp.ClientSession(connector=connector) as http, \
                http.get(url, headers=sent, allow_redirects=False) as response:
            await response.read()
            if not 200 <= response.status < 300:
                raise ProbeFailed(f"GET {path} answered {response.status}")

    return probe
