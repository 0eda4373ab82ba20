"""A real Cielo in front of the null upstream, set up through its own APIs: shared by dataplane.py and soak.py.

`gateway_rig(...)` starts benchmarks/null_upstream.py on a free loopback port and a real `cielo up` (through
tests/support/server.py, as the end-to-end tests do) that names it with `--upstream` once per deployment.
Through the ARM API it deploys each upstream model on the bootstrap account `cielo-openai`, registers a
service principal, gives it "Cognitive Services OpenAI User" on the account with a role-assignment PUT and
takes its client-credentials token for https://cognitiveservices.azure.com. The caller gets the request
targets, headers and body of an authenticated chat completion, checked once before it is handed over.

Why several deployments: a Standard deployment admits `capacity` requests per 10 s and one model's
deployments may hold at most 1,000 capacity per subscription and region, so one deployment admits at most
100 req/s (shared by all workers of a server). Each upstream name is its own model, so `deployments`
capacity-1,000 deployments admit about `deployments` x 100 req/s in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
for folder in (REPO / "src", REPO / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from support.server import CieloServer, start_server  # noqa: E402

ARM_API = "2023-05-01"
DATA_API = "2024-10-21"
RG, ACCOUNT = "cielo-rg", "cielo-openai"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # the built-in role Cognitive Services OpenAI User
QUOTA_CAPACITY = 1000  # the most one model's deployments may hold in a subscription and region
CHAT_BODY = {"messages": [{"role": "user", "content": "Say ok."}], "max_tokens": 16, "temperature": 0}


def start_announcing(command: list[str], log_path: Path, expect: str,
                     timeout_s: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start a helper process whose first stdout line announces where it listens; return it and that line.
    A process that says nothing within `timeout_s` is killed; one that says something else is stopped."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
    watchdog = threading.Timer(timeout_s, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()
    finally:
        watchdog.cancel()
    if expect not in first:
        stop_process(process)
        raise RuntimeError(f"{Path(command[1]).name} did not start: {first!r} {log_path.read_text(errors='replace')}")
    return process, first


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.stdout is not None:
        process.stdout.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class NullUpstream:
    """benchmarks/null_upstream.py on a free loopback port, as a child process."""

    def __init__(self, log_path: Path, delay_ms: float = 0.0) -> None:
        command = [sys.executable, str(BENCHMARKS / "null_upstream.py"), "--port", "0"]
        if delay_ms:
            command += ["--delay-ms", str(delay_ms)]
        self.log_path = log_path
        self.process, first = start_announcing(command, log_path, "listening on http://127.0.0.1:", 15)
        self.port = int(first.split("127.0.0.1:", 1)[1].split()[0])
        self.pid = self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


class Arm:
    """The few resource-manager calls the benchmarks need, as the bootstrap administrator."""

    def __init__(self, server: CieloServer) -> None:
        self.server = server
        self.client = server.http()
        self.headers = {"Authorization": f"Bearer {server.admin_token('https://management.core.windows.net/')}"}
        self.account = (f"/subscriptions/{server.subscription_id}/resourceGroups/{RG}/providers/"
                        f"Microsoft.CognitiveServices/accounts/{ACCOUNT}")

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.client.request(method, path, params={"api-version": ARM_API}, json=body,
                                       headers=self.headers)
        if not response.is_success:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    def endpoint(self) -> str:
        return str(self.call("GET", self.account)["properties"]["endpoint"]).rstrip("/")

    def deploy(self, name: str, model: dict[str, str], capacity: int) -> dict[str, Any]:
        return self.call("PUT", f"{self.account}/deployments/{name}",
                         {"sku": {"name": "Standard", "capacity": capacity}, "properties": {"model": model}})

    def openai_user(self, name: str) -> str:
        """A new service principal holding Cognitive Services OpenAI User on the account: its bearer token."""
        app = self.server.create_app(name)
        self.call("PUT", f"{self.account}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", {
            "properties": {"roleDefinitionId": f"/subscriptions/{self.server.subscription_id}/providers/"
                                               f"Microsoft.Authorization/roleDefinitions/{OPENAI_USER}",
                           "principalId": app["spObjectId"], "principalType": "ServicePrincipal"}})
        token = self.server.token({"client_id": app["appId"], "client_secret": app["secret"],
                                   "grant_type": "client_credentials",
                                   "scope": "https://cognitiveservices.azure.com/.default"})
        return str(token["access_token"])

    def close(self) -> None:
        self.client.close()


def upstream_name(index: int) -> str:
    return "null" if index == 0 else f"null-{index + 1}"


@dataclass
class Gateway:
    server: CieloServer
    upstream: NullUpstream
    arm: Arm
    paths: list[str]  # one chat-completions target (path and query) per deployment
    headers: dict[str, str]  # bearer token and content type
    body: str

    @property
    def url(self) -> str:
        """Cielo's origin; the paths go after it."""
        return f"{self.server.base_url}/"


@contextmanager
def gateway_rig(data_dir: Path, *, workers: int, deployments: int, principal: str = "bench",
                upstream_delay_ms: float = 0.0, server_env: dict[str, str] | None = None,
                extra_args: tuple[str, ...] = ()) -> Iterator[Gateway]:
    upstream = NullUpstream(data_dir.parent / f"{data_dir.name}-null-upstream.log", upstream_delay_ms)
    server: CieloServer | None = None
    arm: Arm | None = None
    try:
        # null_upstream answers any path that ends in /chat/completions.
        extra = ["--workers", str(workers), *extra_args]
        for index in range(deployments):
            extra += ["--upstream", f"{upstream_name(index)}={upstream.base_url}/v1,model=null"]
        server = start_server(data_dir, extra_args=tuple(extra), env=server_env)
        arm = Arm(server)
        for index in range(deployments):
            name = upstream_name(index)
            arm.deploy(name, {"format": "OpenAI-Compatible", "name": name, "version": "1"}, QUOTA_CAPACITY)
        token = arm.openai_user(f"{principal}-{os.getpid()}")
        prefix = arm.endpoint().removeprefix(server.base_url)
        paths = [f"{prefix}/openai/deployments/{upstream_name(index)}/chat/completions?api-version={DATA_API}"
                 for index in range(deployments)]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps(CHAT_BODY, separators=(",", ":"))
        with server.http() as client:  # the exact request works before anything is timed
            check = client.post(paths[0], content=body, headers=headers)
            if check.status_code != 200 or check.json()["choices"][0]["message"]["content"] != "ok":
                raise RuntimeError(f"the checked request failed: {check.status_code} {check.text}")
        yield Gateway(server, upstream, arm, paths, headers, body)
    finally:
        if arm is not None:
            arm.close()
        if server is not None:
            server.stop()
        upstream.stop()
