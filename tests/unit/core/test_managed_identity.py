from __future__ import annotations

from cielo.core.managed_identity import token_request

COG = "https://cognitiveservices.azure.com"


def test_app_service_when_its_variables_are_set() -> None:
    env = {"IDENTITY_ENDPOINT": "http://127.0.0.1:8100/msi/token", "IDENTITY_HEADER": "h" * 32}
    url, params, headers = token_request(COG + "/.default", "/subscriptions/s/resourcegroups/r/providers/x/y/z", env)
    assert url == env["IDENTITY_ENDPOINT"] and headers == {"X-IDENTITY-HEADER": "h" * 32}
    assert params == {"api-version": "2019-08-01", "resource": COG,
                      "mi_res_id": "/subscriptions/s/resourcegroups/r/providers/x/y/z"}


def test_imds_otherwise_with_its_own_parameter_names() -> None:
    url, params, headers = token_request(COG, "client-id", {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://h:1/"})
    assert url == "http://h:1/metadata/identity/oauth2/token" and headers == {"Metadata": "true"}
    assert params == {"api-version": "2018-02-01", "resource": COG, "client_id": "client-id"}
    _, by_resource_id, _ = token_request(COG, "/subscriptions/s", {})
    assert by_resource_id["msi_res_id"] == "/subscriptions/s"
    assert token_request(COG, None, {})[0] == "http://169.254.169.254/metadata/identity/oauth2/token"
