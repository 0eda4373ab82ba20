"""The how-to (seed-howto.md), end to end against a private Cielo: the shell part with the `cielo` CLI in
place of az, jq and curl, and the legacy Python part with openai 0.28.1 in a virtual environment.

Roles apply to the very next request (Cielo's default propagation delay is 0), so the how-to's
"~5 mins" wait is not needed: the completion is refused before the assignment and served right after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest_dataplane import COGNITIVE_SERVICES_USER, DataPlane

from e2e.cli_helpers import Cli, make_cli, new_user

pytest_plugins = ("conftest_dataplane",)  # the `dataplane` server and `dp_admin`, shared by test_dataplane_*
pytestmark = pytest.mark.e2e

CURL_BODY = '{"prompt":"Once upon a time","max_tokens":16}'


def _shell(script: str, env: dict[str, str], timeout: float = 90) -> str:
    """Run bash lines with `cielo` standing for `python -m cielo.cli.main` (as `az` would be on PATH)."""
    prelude = f'set -euo pipefail\ncielo() {{ "{sys.executable}" -m cielo.cli.main "$@"; }}\n'
    completed = subprocess.run(["bash", "-c", prelude + textwrap.dedent(script)], env=env, capture_output=True,
                               text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


def _curl(cli: Cli, endpoint: str, token_file: Path, out: Path, body: str = CURL_BODY) -> tuple[int, Any]:
    """The how-to's curl with the token from `account get-access-token` (no Content-Type, as in the how-to)."""
    status = _shell("""
        accessToken=$(cat "$TOKEN_FILE")
        curl -sS --max-time 90 -o "$OUT" -w '%{http_code}' \\
          "${endpoint%/}/openai/deployments/smollm2/completions?api-version=2023-05-15" \\
          -H "Authorization: Bearer $accessToken" -d "$BODY"
        """, {**cli.env, "endpoint": endpoint, "TOKEN_FILE": str(token_file), "OUT": str(out), "BODY": body})
    return int(status), json.loads(out.read_text())


def test_howto_cli_and_curl(dataplane: DataPlane, dp_admin: Cli, tmp_path: Path) -> None:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.skip("jq and curl are needed to run the how-to's shell lines")
    server = dataplane.server
    member = new_user(server, "howto")
    # A user who can read the subscription (so `account show` and `group show` work as in the how-to),
    # but holds no data action: Reader, like Owner, has none.
    dp_admin.run("role", "assignment", "create", "--role", "Reader", "--assignee", member.upn,
                  "--scope", f"/subscriptions/{server.subscription_id}", "-o", "none")

    user_cli = make_cli(server, {**dataplane.client_env(), "CIELO_CONFIG_DIR": str(tmp_path / "user-config")},
                        tmp_path)
    token_file = tmp_path / "token"
    lines = _shell("""
        cielo login --username "$USERNAME" --password "$PASSWORD" -o none
        export user=$(cielo account show | jq -r .user.name)
        echo "$user"
        cielo account show --query user.name -o tsv
        export resourceId=$(cielo group show -g cielo-rg | jq -r .id)
        echo "$resourceId"
        export endpoint=$(cielo cognitiveservices account show -n cielo-openai -g cielo-rg \\
                          --query properties.endpoint -o tsv)
        echo "$endpoint"
        export accessToken=$(cielo account get-access-token --resource https://cognitiveservices.azure.com \\
                             | jq -r .accessToken)
        printf '%s' "$accessToken" > "$TOKEN_FILE"
        """, {**user_cli.env, "USERNAME": member.upn, "PASSWORD": member.password,
              "TOKEN_FILE": str(token_file)}).splitlines()
    user, user_again, resource_id, endpoint = lines
    assert user == user_again == member.upn
    assert resource_id == dataplane.rg_id()
    assert endpoint == dataplane.endpoint
    assert token_file.read_text().count(".") == 2

    # Before the role assignment: a valid token, but no data action.
    status, body = _curl(user_cli, endpoint, token_file, tmp_path / "denied.json")
    assert status == 401, body
    assert body["error"]["code"] == "PermissionDenied"
    assert member.upn in body["error"]["message"]

    # The administrator assigns "Cognitive Services User" on the resource group: the next request is served.
    created = json.loads(_shell("""
        cielo role assignment create --role "Cognitive Services User" --assignee "$user" --scope "$resourceId"
        """, {**dp_admin.env, "user": user, "resourceId": resource_id}))
    assert created["principalId"] == member.object_id
    assert created["scope"] == resource_id
    assert created["roleDefinitionId"].endswith(f"/roleDefinitions/{COGNITIVE_SERVICES_USER}")

    status, body = _curl(user_cli, endpoint, token_file, tmp_path / "allowed.json")
    assert status == 200, body
    choice = body["choices"][0]
    assert body["object"] == "text_completion"
    assert choice["text"].strip(), body
    assert body["usage"]["prompt_tokens"] > 0
    assert 0 < body["usage"]["completion_tokens"] <= 16
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert body["prompt_filter_results"][0]["prompt_index"] == 0

    # The published how-to's curl sends no max_tokens: OpenAI's default of 16 applies (not the whole context).
    status, body = _curl(user_cli, endpoint, token_file, tmp_path / "default.json",
                         body='{ "prompt": "Once upon a time" }')
    assert status == 200, body
    assert 0 < body["usage"]["completion_tokens"] <= 16

    # Removing the assignment refuses again at once.
    dp_admin.run("role", "assignment", "delete", "--ids", created["id"], "-o", "none")
    status, body = _curl(user_cli, endpoint, token_file, tmp_path / "revoked.json")
    assert status == 401, body
    assert body["error"]["code"] == "PermissionDenied"


# ----------------------------------------------------------------------------- openai 0.28.1
LEGACY_SNIPPET = '''
import os
import openai

openai.api_type = "azure_ad"
openai.api_base = os.environ["ENDPOINT"]  # with its trailing slash: the client sends `//openai/...`
openai.api_version = "2023-05-15"
openai.api_key = os.environ["TOKEN"]

system_message_template = "<|im_start|>system\\n{}\\n<|im_end|>"
system_message = system_message_template.format("")


def create_prompt(system_message, messages):
    prompt = system_message
    message_template = "\\n<|im_start|>{}\\n{}\\n<|im_end|>"
    for message in messages:
        prompt += message_template.format(message['sender'], message['text'])
    prompt += "\\n<|im_start|>assistant\\n"
    return prompt


messages = [{"sender": "user", "text": "Hello world"}]

response = openai.Completion.create(
    engine="smollm2",
    prompt=create_prompt(system_message, messages),
    temperature=0,
    max_tokens=50,
    top_p=0.95,
    frequency_penalty=0,
    presence_penalty=0,
    stop=["<|im_end|>"])

print(response)
'''


@pytest.fixture(scope="session")
def legacy_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with openai==0.28.1 (the how-to's client), made once per session."""
    venv = tmp_path_factory.mktemp("openai-0.28.1") / "venv"
    python = venv / "bin" / "python"
    pip_args = ["install", "--quiet", "--disable-pip-version-check", "openai==0.28.1"]
    # Fast path: a venv without its own pip, filled by this interpreter's pip.
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True)
    installed = made.returncode == 0 and subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), *pip_args], capture_output=True, text=True,
        timeout=600).returncode == 0
    if not installed:
        shutil.rmtree(venv, ignore_errors=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"python -m venv failed: {made.stderr[-500:]}")
        pip = subprocess.run([str(python), "-m", "pip", *pip_args], capture_output=True, text=True, timeout=600)
        if pip.returncode != 0:
            pytest.skip(f"pip could not install openai==0.28.1: {pip.stderr[-800:]}")
    return python


def test_howto_legacy_openai_028(dataplane: DataPlane, legacy_python: Path, tmp_path: Path) -> None:
    script = tmp_path / "howto_legacy.py"
    script.write_text(LEGACY_SNIPPET)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "REQUESTS_CA_BUNDLE": dataplane.server.bundle, "ENDPOINT": dataplane.endpoint,
           "TOKEN": dataplane.sp_token()}
    assert env["ENDPOINT"].endswith("/")
    completed = subprocess.run([str(legacy_python), str(script)], env=env, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    response = json.loads(completed.stdout)
    assert response["object"] == "text_completion"
    choice = response["choices"][0]
    assert choice["text"].strip(), response
    assert "<|im_end|>" not in choice["text"]
    assert choice["finish_reason"] in ("stop", "length")
    assert 0 < response["usage"]["completion_tokens"] <= 50
    assert response["usage"]["prompt_tokens"] > 0
