"""Starting a real `cielo up` process on loopback for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cielo.logging_setup import BatchedLines

ADMIN_USER = "admin@cielo.local"
ADMIN_PASSWORD = "Adm1n-Passw0rd!"
CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def can_bind_443() -> bool:
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 443))
        return True
    except OSError:
        return False


@dataclass
class CieloServer:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    tenant_id: str = ""
    subscription_id: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def bundle(self) -> str:
        return str(self.data_dir / "tls" / "bundle.pem")

    def client_env(self) -> dict[str, str]:
        """Environment for a client process: trust Cielo's CA and point azure-identity at it."""
        return {
            "REQUESTS_CA_BUNDLE": self.bundle,
            "SSL_CERT_FILE": self.bundle,
            "CURL_CA_BUNDLE": self.bundle,
            "AZURE_AUTHORITY_HOST": self.base_url,
            "CIELO_ENDPOINT": self.base_url,
        }

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.bundle, timeout=30)

    def log_text(self) -> str:
        """The server's output so far. Info lines (the access log) reach it in batches, at most
        `BatchedLines.FLUSH_S` after they were logged (logging_setup.py): wait that long first, so every line of
        what the test already did is there."""
        time.sleep(BatchedLines.FLUSH_S + 0.15)
        return self.log_path.read_text(errors="replace")

    def token(self, form: dict[str, str], tenant: str | None = None) -> dict[str, Any]:
        with self.http() as client:
            response = client.post(f"/{tenant or self.tenant_id}/oauth2/v2.0/token", data=form)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    def admin_token(self, resource: str = "https://graph.microsoft.com") -> str:
        body = self.token({
            "client_id": CLI_CLIENT_ID, "grant_type": "password", "username": ADMIN_USER,
            "password": ADMIN_PASSWORD, "scope": f"{resource}/.default",
        })
        return str(body["access_token"])

    def graph(self, method: str, path: str, body: Any = None) -> Any:
        with self.http() as client:
            response = client.request(method, "/v1.0" + path, json=body,
                                      headers={"Authorization": f"Bearer {self.admin_token()}"})
            response.raise_for_status()
            return response.json() if response.content else None

    def create_app(self, name: str, *, secret: bool = True, sp: bool = True) -> dict[str, Any]:
        """An app registration (+ service principal, + secret): returns appId, objectId, secret."""
        app = self.graph("POST", "/applications", {"displayName": name})
        result = {"appId": app["appId"], "objectId": app["id"]}
        if secret:
            result["secret"] = self.graph("POST", f"/applications/{app['id']}/addPassword",
                                          {"passwordCredential": {"displayName": "test"}})["secretText"]
        if sp:
            result["spObjectId"] = self.graph("POST", "/servicePrincipals", {"appId": app["appId"]})["id"]
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_server(data_dir: Path, *, listen_443: bool = False, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, port: int | None = None, timeout_s: float = 30) -> CieloServer:
    """`cielo up` on `port` (else a free one), waited for until /healthz answers (the caller stops it)."""
    port = port or free_port()
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    args = [sys.executable, "-m", "cielo.cli.main", "up", "--data-dir", str(data_dir), "--port", str(port),
            "--admin-user", ADMIN_USER, *extra_args]
    if listen_443:
        args.append("--listen-443")
    # The password through the environment (a command line is visible to every local user), unless the caller
    # gives it another way.
    password_given = any(arg.startswith("--admin-password") for arg in extra_args) or \
        "CIELO_ADMIN_PASSWORD_FILE" in (env or {})
    process_env = {**os.environ, **({} if password_given else {"CIELO_ADMIN_PASSWORD": ADMIN_PASSWORD}),
                   **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=process_env)
    server = CieloServer(data_dir, port, process, log_path)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cielo up exited early:\n{server.log_text()}")
        bundle = Path(server.bundle)
        if bundle.exists():
            try:
                with httpx.Client(verify=str(bundle), timeout=2) as client:
                    if client.get(f"{server.base_url}/healthz").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    else:
        server.stop()
        raise RuntimeError(f"cielo up did not start:\n{server.log_text()}")
    for line in server.log_text().splitlines():
        parts = line.split()
        if parts[:1] == ["tenant"]:
            server.tenant_id = parts[1]
        if parts[:1] == ["subscription"]:
            server.subscription_id = parts[1]
    return server
