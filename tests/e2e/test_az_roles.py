"""The real azure-cli against Cielo's whole built-in role catalogue and its provider operations: `az role definition
list --name`, `--custom-role-only false`, a role assignment of a service Cielo does not serve by name, and `az
provider operation show` (docs/rbac.md). az is installed and configured as in test_az_cli.py, whose fixtures
these are."""

from __future__ import annotations

from typing import Any

import pytest
import test_az_cli
from test_az_cli import Az, Setup

pytestmark = pytest.mark.e2e

# test_az_cli.py's fixtures, used here as they are (this module gets its own server and az configurations).
az_exe = test_az_cli.az_exe
setup = test_az_cli.setup
az_contributor = test_az_cli.az_contributor
az_owner = test_az_cli.az_owner

AI_DEVELOPER = "64702f94-c441-49e6-a78b-ef80e0188fee"
CHAT = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"


def test_role_definition_list_by_name(az_contributor: Az) -> None:
    [role] = az_contributor.ok("role", "definition", "list", "--name", "Azure AI Developer")
    assert role["name"] == AI_DEVELOPER and role["roleName"] == "Azure AI Developer"
    assert role["roleType"] == "BuiltInRole" and role["assignableScopes"] == ["/"]
    assert "Microsoft.CognitiveServices/accounts/OpenAI/*" in role["permissions"][0]["dataActions"]
    [by_id] = az_contributor.ok("role", "definition", "list", "--name", AI_DEVELOPER)
    assert by_id["roleName"] == "Azure AI Developer"


def test_role_definition_list_counts_the_catalogue(az_contributor: Az) -> None:
    everything: list[dict[str, Any]] = az_contributor.ok("role", "definition", "list", "--custom-role-only", "false")
    custom = az_contributor.ok("role", "definition", "list", "--custom-role-only", "true")
    assert sum(1 for r in everything if r["roleType"] == "BuiltInRole") == 928
    assert len(everything) == 928 + len(custom)
    assert {"Storage Blob Data Contributor", "Key Vault Secrets User", "Search Index Data Reader",
            "Cognitive Services Usages Reader"} <= {r["roleName"] for r in everything}


def test_assign_a_role_of_a_service_cielo_does_not_serve(az_owner: Az, setup: Setup) -> None:
    created = az_owner.ok("role", "assignment", "create", "--role", "Storage Blob Data Contributor",
                          "--assignee-object-id", setup.contributor["spObjectId"],
                          "--assignee-principal-type", "ServicePrincipal", "--scope", setup.rg_id)
    assert created["roleDefinitionId"].endswith("/ba92f5b4-2d11-453d-a403-e96b0029c9fe")
    assert created["scope"] == setup.rg_id


def test_provider_operation_show(az_contributor: Az) -> None:
    shown = az_contributor.ok("provider", "operation", "show", "--namespace", "Microsoft.CognitiveServices")
    assert shown["name"] == "Microsoft.CognitiveServices"
    operations = {o["name"]: o for t in shown["resourceTypes"] for o in t["operations"]}
    assert operations[CHAT]["isDataAction"] is True
    assert operations["Microsoft.CognitiveServices/accounts/listKeys/action"]["isDataAction"] is False
    listed = az_contributor.ok("provider", "operation", "list", "--query", "[].name")
    assert "Microsoft.Authorization" in listed and "Microsoft.CognitiveServices" in listed
