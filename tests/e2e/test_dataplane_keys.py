"""API keys on the data plane (openai-python's lib/azure.py, and Azure's answers
as docs/data-plane.md gives them): `keys list` keys work in `api-key` (and in
`Authorization: Bearer` next to it, as openai 1.x sends them), a wrong key is Azure's exact 401, a
regenerated key stops at once while the other keeps working, and `--disable-local-auth true` turns every
key into 403 AuthenticationTypeDisabled (and listKeys into 400) while Entra tokens keep working.

Everything happens on an account of its own, so nothing here touches the other tests' account.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest_dataplane import (
    API_VERSION,
    KEY_DENIED,
    MOCK,
    MOCK_DEPLOYMENT,
    OPENAI_USER,
    DataPlane,
    azure_error,
)
from openai import AuthenticationError, AzureOpenAI, OpenAI, PermissionDeniedError

from e2e.cli_helpers import Cli

pytest_plugins = ("conftest_dataplane",)
pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "hello keys"}]
BODY = {"messages": HI, "max_tokens": 5}


@dataclass
class KeyedAccount:
    name: str
    endpoint: str


@pytest.fixture(scope="module")
def account(dataplane: DataPlane) -> Iterator[KeyedAccount]:
    name, endpoint = dataplane.new_account("keys")
    dataplane.deploy(MOCK_DEPLOYMENT, MOCK, 100, account=name)
    dataplane.assign(OPENAI_USER, dataplane.app["spObjectId"], dataplane.account_path(name))
    yield KeyedAccount(name, endpoint)


def _chat(dataplane: DataPlane, account: KeyedAccount, headers: dict[str, str]) -> httpx.Response:
    return dataplane.post(MOCK_DEPLOYMENT, "chat/completions", BODY, headers=headers, endpoint=account.endpoint)


def _keys(dp_admin: Cli, account: KeyedAccount) -> dict[str, str]:
    keys: dict[str, str] = dp_admin.json("cognitiveservices", "account", "keys", "list", "-n", account.name,
                                          "-g", "cielo-rg")
    return keys


def test_keys_work_and_wrong_keys_are_refused(dataplane: DataPlane, dp_admin: Cli, account: KeyedAccount,
                                              dp_env: dict[str, str]) -> None:
    keys = _keys(dp_admin, account)
    assert set(keys) == {"key1", "key2"} and keys["key1"] != keys["key2"]

    for key in keys.values():
        ok = _chat(dataplane, account, {"api-key": key})
        assert ok.status_code == 200, ok.text
        assert ok.json()["choices"][0]["message"]["content"] == "echo: hello keys"
    # openai 1.x with api_key sends the key twice, as `api-key` and as `Authorization: Bearer`.
    both = _chat(dataplane, account, {"api-key": keys["key1"], "Authorization": f"Bearer {keys['key1']}"})
    assert both.status_code == 200, both.text
    # The key is authoritative even next to a bearer that is not one.
    assert _chat(dataplane, account, {"api-key": keys["key2"], "Authorization": "Bearer x.y.z"}).status_code == 200

    with AzureOpenAI(azure_endpoint=account.endpoint, api_version=API_VERSION, api_key=keys["key1"]) as client:
        raw = client.chat.completions.with_raw_response.create(model=MOCK_DEPLOYMENT, messages=HI, max_tokens=5)
        assert raw.http_response.request.headers["api-key"] == keys["key1"]
        assert raw.parse().choices[0].message.content == "echo: hello keys"
        assert client.embeddings.create(model=MOCK_DEPLOYMENT, input="x").data[0].embedding
    with OpenAI(base_url=f"{account.endpoint}openai/v1/", api_key=keys["key2"]) as v1:
        assert v1.chat.completions.create(model=MOCK_DEPLOYMENT, messages=HI, max_tokens=5).choices[0].message.content

    wrong = _chat(dataplane, account, {"api-key": "0" * 32})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": {"code": "401", "message": KEY_DENIED}}
    # A key of another account is just as wrong here.
    other = dataplane.arm("POST", f"{dataplane.account_id}/listKeys").json()["key1"]
    assert _chat(dataplane, account, {"api-key": other}).json() == {"error": {"code": "401", "message": KEY_DENIED}}
    with AzureOpenAI(azure_endpoint=account.endpoint, api_version=API_VERSION, api_key="wrong",
                     max_retries=0) as client, pytest.raises(AuthenticationError) as refused:
        client.chat.completions.create(model=MOCK_DEPLOYMENT, messages=HI, max_tokens=5)
    assert refused.value.status_code == 401
    v1_wrong = dataplane.http.post(f"{account.endpoint}openai/v1/chat/completions",
                                   json={**BODY, "model": MOCK_DEPLOYMENT}, headers={"Authorization": "Bearer nope"})
    assert v1_wrong.status_code == 401 and v1_wrong.json()["error"]["message"] == KEY_DENIED


def test_regenerated_key_stops_at_once(dataplane: DataPlane, dp_admin: Cli, account: KeyedAccount) -> None:
    before = _keys(dp_admin, account)
    after: dict[str, str] = dp_admin.json("cognitiveservices", "account", "keys", "regenerate", "-n", account.name,
                                           "-g", "cielo-rg", "--key-name", "key1")
    assert after["key1"] != before["key1"] and after["key2"] == before["key2"]
    assert _chat(dataplane, account, {"api-key": before["key1"]}).json()["error"]["message"] == KEY_DENIED
    assert _chat(dataplane, account, {"api-key": before["key2"]}).status_code == 200
    assert _chat(dataplane, account, {"api-key": after["key1"]}).status_code == 200


def test_disable_local_auth(dataplane: DataPlane, dp_admin: Cli, account: KeyedAccount,
                            dp_env: dict[str, str]) -> None:
    keys = _keys(dp_admin, account)
    bearer = {"Authorization": f"Bearer {dataplane.sp_token()}"}
    updated = dp_admin.json("cognitiveservices", "account", "update", "-n", account.name, "-g", "cielo-rg",
                             "--disable-local-auth", "true")
    try:
        assert updated["properties"]["disableLocalAuth"] is True
        for headers in ({"api-key": keys["key1"]}, {"api-key": keys["key2"], "Authorization": f"Bearer {keys['key2']}"},
                        {"api-key": "0" * 32}):
            refused = _chat(dataplane, account, headers)
            error = azure_error(refused, 403, "AuthenticationTypeDisabled")
            assert error["message"] == "Key based authentication is disabled for this resource."
        v1 = dataplane.http.post(f"{account.endpoint}openai/v1/chat/completions",
                                 json={**BODY, "model": MOCK_DEPLOYMENT},
                                 headers={"Authorization": f"Bearer {keys['key1']}"})
        azure_error(v1, 403, "AuthenticationTypeDisabled")
        with AzureOpenAI(azure_endpoint=account.endpoint, api_version=API_VERSION, api_key=keys["key1"],
                         max_retries=0) as client, pytest.raises(PermissionDeniedError):
            client.chat.completions.create(model=MOCK_DEPLOYMENT, messages=HI, max_tokens=5)

        # Entra ID keeps working.
        assert _chat(dataplane, account, bearer).status_code == 200

        # ARM refuses to list the keys: 400, and the CLI fails as az does.
        listed = dataplane.arm("POST", f"{dataplane.account_path(account.name)}/listKeys")
        assert listed.status_code == 400, listed.text
        assert listed.json()["error"]["message"] == "Failed to list key. disableLocalAuth is set to be true"
        dp_admin.fails("cognitiveservices", "account", "keys", "list", "-n", account.name, "-g", "cielo-rg")
    finally:
        dp_admin.run("cognitiveservices", "account", "update", "-n", account.name, "-g", "cielo-rg",
                      "--disable-local-auth", "false", "-o", "none")
    assert _chat(dataplane, account, {"api-key": keys["key1"]}).status_code == 200
