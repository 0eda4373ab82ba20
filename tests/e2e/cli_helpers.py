"""Running the real `cielo` command in a subprocess against the session's `cielo up`.

Every call is `python -m cielo.cli.main ...` with the `client_env` environment (CA bundle, authority
host, CIELO_ENDPOINT, a fresh CIELO_CONFIG_DIR), a private HOME and no browser unless a test asks.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.browser import device_login
from support.server import ADMIN_PASSWORD, ADMIN_USER, CieloServer

CLI = (sys.executable, "-m", "cielo.cli.main")
COGNITIVE = "https://cognitiveservices.azure.com"
GRAPH = "https://graph.microsoft.com"
USER_PASSWORD = "Cli-Us3r-Passw0rd!"

# Variables that would steer the CLI (or azure-identity) somewhere else than the test wants.
_SCRUBBED = ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY", "CIELO_CA_BUNDLE", "CIELO_DATA_DIR", "AZURE_CONFIG_DIR",
             "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME", "AZURE_PASSWORD",
             "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT",
             "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_TOKEN_CREDENTIALS")


@dataclass
class Result:
    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (f"cielo {' '.join(self.args)} -> exit {self.returncode}\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")


@dataclass
class Cli:
    """One CLI "user": an environment with its own config dir and HOME."""

    server: CieloServer
    env: dict[str, str]
    home: Path

    @property
    def config_dir(self) -> Path:
        return Path(self.env["CIELO_CONFIG_DIR"])

    def run(self, *args: str, ok: bool | None = True, timeout: float = 60,
            env: dict[str, str] | None = None) -> Result:
        """Run `cielo ARGS`; with ok=True (default) it must succeed, with ok=False it must fail."""
        completed = subprocess.run([*CLI, *args], env={**self.env, **(env or {})}, capture_output=True,
                                   text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        result = Result(args, completed.returncode, completed.stdout, completed.stderr)
        if ok is True:
            assert result.returncode == 0, str(result)
        elif ok is False:
            assert result.returncode != 0, str(result)
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return self.run(*args, "-o", "json", **kwargs).json()

    def fails(self, *args: str, code: int = 1, **kwargs: Any) -> Result:
        """A failing command, as az fails: exit code 1 (3 for a resource the resource manager does not find) and
        `ERROR: ...` on stderr, nothing on stdout."""
        result = self.run(*args, ok=False, **kwargs)
        assert result.returncode == code, str(result)
        assert any(line.startswith("ERROR: ") for line in result.stderr.splitlines()), str(result)
        assert result.stdout == "", str(result)
        return result

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([*CLI, *args], env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def login_admin(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.json("login", "--username", ADMIN_USER, "--password", ADMIN_PASSWORD)
        return entries

    def tokens(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.config_dir / "tokens.json").read_text())
        return data

    def write_tokens(self, data: dict[str, Any]) -> None:
        (self.config_dir / "tokens.json").write_text(json.dumps(data))

    def expire_access_tokens(self) -> None:
        """Make every cached access token stale (the CLI's own cache file, as a clock jump would)."""
        data = self.tokens()
        for entry in data["access_tokens"].values():
            entry["expires_on"] = int(time.time()) - 60
        self.write_tokens(data)


def make_cli(server: CieloServer, client_env: dict[str, str], tmp_path: Path, name: str = "cli") -> Cli:
    home = tmp_path / f"{name}-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(client_env)
    # The default user shares client_env's config dir, so in-process clients (AzureCliCredential
    # running az) see the same sign-in.
    config = client_env.get("CIELO_CONFIG_DIR") if name == "cli" else None
    env.update({"HOME": str(home), "CIELO_CONFIG_DIR": config or str(tmp_path / f"{name}-config"),
                "PYTHONDONTWRITEBYTECODE": "1"})
    return Cli(server, env, home)


# ----------------------------------------------------------------------------- directory objects
@dataclass(frozen=True)
class User:
    upn: str
    password: str
    object_id: str


def new_user(server: CieloServer, prefix: str = "cli-user") -> User:
    upn = f"{prefix}-{secrets.token_hex(4)}@cielo.local"
    created = server.graph("POST", "/users", {"userPrincipalName": upn, "displayName": prefix,
                                              "passwordProfile": {"password": USER_PASSWORD}})
    return User(upn, USER_PASSWORD, created["id"])


def client_credentials(server: CieloServer, app_id: str, secret: str, scope: str = f"{COGNITIVE}/.default",
                       ) -> httpx.Response:
    with server.http() as client:
        return client.post(f"/{server.tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": app_id, "client_secret": secret, "scope": scope})


def approve_device_code(server: CieloServer, user_code: str, username: str, password: str,
                        decision: str = "approve") -> httpx.Response:
    """What a person does on the verification page: enter the code, sign in, allow (or decline)."""
    return device_login(server.base_url, server.bundle, user_code, username, password, decision)


# ----------------------------------------------------------------------------- a scripted browser
_BROWSER = '''\
#!{python}
"""A stand-in web browser for `cielo login` (set as BROWSER): signs in on the page it is given."""
import html.parser, json, sys, urllib.parse

import httpx

CONFIG = json.loads({config!r})


class Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {{}}

    def handle_starttag(self, tag, attrs):
        values = {{k: v or "" for k, v in attrs}}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        if tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value", "")


def main(url):
    report = {{"authorize_url": url}}
    try:
        if CONFIG["redirect_uri"]:
            parts = urllib.parse.urlsplit(url)
            query = dict(urllib.parse.parse_qsl(parts.query))
            report["loopback"] = query["redirect_uri"]
            query["redirect_uri"] = CONFIG["redirect_uri"]
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        with httpx.Client(verify=CONFIG["bundle"], timeout=30, follow_redirects=False) as browser:
            page = browser.get(url)
            report["page_status"] = page.status_code
            if page.status_code != 200:
                report["page"] = page.text[:2000]
                return
            form = Form()
            form.feed(page.text)
            fields = {{**form.fields, "username": CONFIG["username"], "password": CONFIG["password"]}}
            answer = browser.post(urllib.parse.urljoin(url, form.action), data=fields)
            report["post_status"] = answer.status_code
            location = answer.headers.get("location", "")
            report["location"] = location
            if CONFIG["state"] is not None:
                parts = urllib.parse.urlsplit(location)
                query = dict(urllib.parse.parse_qsl(parts.query))
                query["state"] = CONFIG["state"]
                location = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
            if location.startswith("http://localhost:") or location.startswith("http://127.0.0.1:"):
                done = httpx.get(location, timeout=30, follow_redirects=True)
                report["loopback_status"] = done.status_code
                report["loopback_page"] = done.text[:500]
                report["loopback_final_url"] = str(done.url)
    finally:
        with open(CONFIG["report"], "w") as handle:
            json.dump(report, handle)


main(sys.argv[1])
'''


def write_browser(directory: Path, server: CieloServer, username: str, password: str, *,
                  state: str | None = None, redirect_uri: str | None = None) -> tuple[Path, Path]:
    """A BROWSER script that signs in with USERNAME/PASSWORD and follows the redirect to the CLI.

    `state` replaces the state in the redirect (a forged response); `redirect_uri` replaces the
    loopback redirect URI in the authorize request. Returns (script, report file)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"browser-{secrets.token_hex(3)}"
    report = script.with_suffix(".json")
    config = json.dumps({"bundle": server.bundle, "username": username, "password": password, "state": state,
                         "redirect_uri": redirect_uri, "report": str(report)})
    script.write_text(_BROWSER.format(python=sys.executable, config=config))
    script.chmod(0o700)
    return script, report


def read_report(report: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(report.read_text())
    return data


# ----------------------------------------------------------------------------- tokens
def verify_token(server: CieloServer, token: str, audience: str) -> dict[str, Any]:
    """Check the token's RS256 signature against the server's published JWKS, and its audience."""
    import jwt

    with server.http() as client:
        jwks = client.get(f"/{server.tenant_id}/discovery/v2.0/keys").json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=audience)
    return claims
