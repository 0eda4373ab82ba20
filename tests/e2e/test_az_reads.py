"""The real azure-cli 2.91 reading what deployment tools look up before they write (docs/resource-manager.md,
"Reads for deployment tools"): locations, providers, resources, an account's SKUs, usages and models. Each command
sends az's own api-version, so a refusal here means Cielo's api-version lists miss what a real client sends.

The az installation, the server and the signed-in Contributor come from test_az_cli's fixtures.
"""

from __future__ import annotations

from test_az_cli import Az, Setup, az_contributor, az_exe, setup

__all__ = ["az_contributor", "az_exe", "setup"]  # the fixtures this module uses


def test_az_reads_locations_providers_and_resources(az_contributor: Az, setup: Setup) -> None:
    locations = az_contributor.ok("account", "list-locations")
    assert "local" in {loc["name"] for loc in locations}
    provider = az_contributor.ok("provider", "show", "--namespace", "Microsoft.CognitiveServices")
    assert provider["registrationState"] == "Registered"
    assert {"accounts", "accounts/deployments"} <= {t["resourceType"] for t in provider["resourceTypes"]}
    in_group = az_contributor.ok("resource", "list", "-g", "cielo-rg")
    assert "Microsoft.CognitiveServices/accounts" in {r["type"] for r in in_group}
    assert "Microsoft.CognitiveServices/accounts/deployments" not in {r["type"] for r in in_group}
    # `az resource show --ids` picks the api-version from the provider's resource types.
    account_id = f"{setup.rg_id}/providers/Microsoft.CognitiveServices/accounts/cielo-openai"
    shown = az_contributor.ok("resource", "show", "--ids", account_id)
    assert shown["id"] == account_id and shown["tags"] == {}


def test_az_reads_what_an_account_offers(az_contributor: Az) -> None:
    account = ("-n", "cielo-openai", "-g", "cielo-rg")
    skus = az_contributor.ok("cognitiveservices", "account", "list-skus", *account)
    assert "S0" in {s["sku"]["name"] for s in skus["value"]}  # az prints the AccountSkuListResult as sent
    usages = az_contributor.ok("cognitiveservices", "account", "list-usage", *account)
    assert any(u["name"]["value"].startswith("OpenAI.Standard.") and u["limit"] == 1000 for u in usages)
    models = az_contributor.ok("cognitiveservices", "account", "list-models", *account)
    assert "SmolLM2-135M-Instruct" in {m["name"] for m in models}
