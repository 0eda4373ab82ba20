"""cielo/client/http.py, the CLI's HTTP client: how an error answer of each surface becomes one ApiError (code and
message), and which CA bundle the CLI trusts (first found: --ca-bundle, CIELO_CA_BUNDLE, REQUESTS_CA_BUNDLE,
SSL_CERT_FILE, the local data directory's, the system's)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cielo.client.http import ApiError, CieloClient, ca_bundle_choice, default_verify


@pytest.mark.parametrize(("answer", "code", "message"), [
    (httpx.Response(404, json={"error": {"code": "ResourceGroupNotFound", "message": "Resource group 'x' could not "
                                                                                    "be found."}}),
     "ResourceGroupNotFound", "Resource group 'x' could not be found."),
    (httpx.Response(400, json={"error": "invalid_grant", "error_description":
                               "AADSTS50126: Error validating credentials.\r\nTrace ID: t\r\nCorrelation ID: c"}),
     "invalid_grant", "AADSTS50126: Error validating credentials."),
    (httpx.Response(401, json={"error": "unauthorized_client"}), "unauthorized_client", "unauthorized_client"),
    (httpx.Response(502, text="<html>" + "x" * 600), "502", "<html>" + "x" * 494),
    (httpx.Response(500, json=["not", "an", "object"]), "500", '["not","an","object"]'),
])
def test_each_error_shape_becomes_code_and_message(answer: httpx.Response, code: str, message: str) -> None:
    client = CieloClient("https://cielo.test/", transport=httpx.MockTransport(lambda _request: answer))
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/subscriptions", "token")
    assert (caught.value.status, caught.value.code, caught.value.message) == (answer.status_code, code, message)
    with pytest.raises(ApiError):
        client.token("t", {"grant_type": "password"})
    with pytest.raises(ApiError):
        client.device_code("t", "c", "s")
    with pytest.raises(ApiError):
        client.openid_configuration("t")
    client.close()


def test_requests_carry_the_token_and_parameters() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": []})

    client = CieloClient("https://cielo.test/", transport=httpx.MockTransport(answer))
    assert client.request("GET", "/subscriptions", "tok", params={"api-version": "2022-12-01"}) == {"value": []}
    assert str(seen[0].url) == "https://cielo.test/subscriptions?api-version=2022-12-01"
    assert seen[0].headers["authorization"] == "Bearer tok"
    client.close()


@pytest.fixture()
def bundles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    names = {}
    for name in ("flag", "CIELO_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = tmp_path / f"{name}.pem"
        path.write_text("pem")
        names[name] = str(path)
    data = tmp_path / "data"
    (data / "tls").mkdir(parents=True)
    (data / "tls" / "bundle.pem").write_text("pem")
    names["data directory"] = str(data / "tls" / "bundle.pem")
    monkeypatch.setenv("CIELO_DATA_DIR", str(data))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("CIELO_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, names[name])
    return names


def test_the_first_bundle_found_is_trusted(bundles: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert ca_bundle_choice(bundles["flag"]) == (bundles["flag"], "--ca-bundle")
    order = ["CIELO_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"]
    for index, name in enumerate(order):
        assert ca_bundle_choice() == (bundles[name], name)
        if index + 1 < len(order):
            monkeypatch.setenv(name, bundles[name] + ".missing")  # named but missing: skipped
    monkeypatch.delenv("SSL_CERT_FILE")
    assert ca_bundle_choice("/nonexistent.pem") == (bundles["data directory"], "data directory")
    monkeypatch.delenv("CIELO_DATA_DIR")  # the default data directory (under HOME) has none
    assert ca_bundle_choice() == (True, "system")
    assert default_verify() is True
