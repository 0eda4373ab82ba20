"""Node.js in intercept mode: `new DefaultAzureCredential()` with no options and the `openai` npm package's
`AzureOpenAI({endpoint: "https://{account}.openai.azure.com/"})`, verbatim, with only the variables
`cielo env --intercept --node` prints (plus EnvironmentCredential's AZURE_CLIENT_ID/SECRET/TENANT_ID, as a
service's environment has them in Azure too).

@azure/identity reads HTTPS_PROXY itself; the openai package calls Node's global fetch(), which ignores it before
Node 24, hence `--node`'s NODE_OPTIONS preload. The packages are npm-installed once into the test cache
(`$CIELO_TEST_CACHE_DIR`, else ~/.cache/cielo-tests); without node or npm, or when the install fails, the module
is skipped with the reason."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_dataplane import ACCOUNT, MOCK_DEPLOYMENT, DataPlane
from intercept_support import intercept_env, intercept_plane

pytestmark = pytest.mark.e2e

PACKAGES = ("@azure/identity@4", "openai@6")
APP = """
import { DefaultAzureCredential, getBearerTokenProvider } from "@azure/identity";
import { AzureOpenAI } from "openai";

const scope = "https://cognitiveservices.azure.com/.default";
const credential = new DefaultAzureCredential();
const client = new AzureOpenAI({ endpoint: "https://%(account)s.openai.azure.com/", apiVersion: "2024-10-21",
  azureADTokenProvider: getBearerTokenProvider(credential, scope), maxRetries: 0 });
const messages = [{ role: "user", content: "Say hello." }];
const reply = await client.chat.completions.create({ model: "%(deployment)s", max_tokens: 8, messages });
let streamed = "";
const stream = await client.chat.completions.create({ model: "%(deployment)s", max_tokens: 8, messages, stream: true });
for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
console.log(JSON.stringify({ object: reply.object, content: reply.choices[0].message.content, streamed }));
"""


def _cache_dir() -> Path:
    if os.environ.get("CIELO_TEST_CACHE_DIR"):
        return Path(os.environ["CIELO_TEST_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cielo-tests"


@pytest.fixture(scope="module")
def node_dir() -> Path:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed for the Node.js intercept test")
    where = _cache_dir() / "node-intercept"
    where.mkdir(parents=True, exist_ok=True)
    with open(where / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((where / "node_modules" / name.rsplit("@", 1)[0] / "package.json").exists() for name in PACKAGES):
            (where / "package.json").write_text(json.dumps({"name": "cielo-intercept-test", "private": True}))
            done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", *PACKAGES], cwd=where,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.skip(f"npm install failed: {done.stderr[-1500:]}")
    return where


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    with intercept_plane(tmp_path_factory, "intercept-node") as plane:  # plane.app holds the data role
        yield plane


def _node(node_dir: Path, plane: DataPlane, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = node_dir / "app.mjs"
    script.write_text(APP % {"account": ACCOUNT, "deployment": MOCK_DEPLOYMENT})
    app = plane.app
    full = {"PATH": os.environ.get("PATH", ""), "HOME": str(plane.work_dir), **env,
            "AZURE_CLIENT_ID": app["appId"], "AZURE_CLIENT_SECRET": app["secret"],
            "AZURE_TENANT_ID": plane.server.tenant_id}
    return subprocess.run(["node", str(script)], cwd=node_dir, env=full, capture_output=True, text=True, timeout=120)


def test_node_identity_and_openai_with_azure_hosts(node_dir: Path, plane: DataPlane) -> None:
    env = intercept_env(plane.server.data_dir, "--node")
    assert env["NODE_OPTIONS"].startswith("--import=file://") and env["NODE_OPTIONS"].endswith("node-fetch-proxy.mjs")
    done = _node(node_dir, plane, env)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["object"] == "chat.completion" and result["content"]
    assert result["streamed"]


def test_without_the_preload_fetch_does_not_reach_cielo(node_dir: Path, plane: DataPlane) -> None:
    """What `--node` is for: the token comes (via @azure/identity's own proxy support), the fetch() call does not."""
    done = _node(node_dir, plane, intercept_env(plane.server.data_dir))
    assert done.returncode != 0
    assert "Connection error" in done.stderr or "ENOTFOUND" in done.stderr, done.stderr[-2000:]
