"""The real azure-cli's `az deployment group …` against a private Cielo: templates written by others
(tests/templates/README.md) deployed as the how-to does it, with az's own poller following Azure-AsyncOperation
(docs/templates.md). Reuses tests/e2e/test_az_cli.py's az install, server and signed-in principals."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from test_az_cli import Az, Setup, az_contributor, az_exe, az_owner, setup

pytestmark = pytest.mark.e2e

TEMPLATES = Path(__file__).parent.parent / "templates"
__all__ = ["az_contributor", "az_exe", "az_owner", "setup"]  # the fixtures this module uses, imported


def _group(az: Az) -> str:
    name = f"az-dep-{secrets.token_hex(4)}"
    az.ok("group", "create", "-n", name, "-l", "local")
    return name


def test_az_deploys_an_identity_and_its_role_assignment(az_owner: Az, setup: Setup) -> None:
    rg = _group(az_owner)
    identity = f"mi-{secrets.token_hex(4)}"
    template = str(TEMPLATES / "rbac-managedidentity.json")
    validated = az_owner.ok("deployment", "group", "validate", "-g", rg, "--template-file", template,
                            "--parameters", f"managedIdentityName={identity}", "location=local")
    assert validated["properties"]["provisioningState"] == "Succeeded"
    created = az_owner.ok("deployment", "group", "create", "-g", rg, "--name", "mi", "--template-file", template,
                          "--parameters", f"managedIdentityName={identity}", "location=local")
    assert created["properties"]["provisioningState"] == "Succeeded", created
    ids = [r["id"] for r in created["properties"]["outputResources"]]
    assert any(i.endswith(f"/userAssignedIdentities/{identity}") for i in ids), ids
    assert any("/providers/Microsoft.Authorization/roleAssignments/" in i for i in ids), ids
    shown = az_owner.ok("deployment", "group", "show", "-g", rg, "-n", "mi")
    assert shown["properties"]["correlationId"] == created["properties"]["correlationId"]
    listed = az_owner.ok("deployment", "group", "list", "-g", rg)
    assert [d["name"] for d in listed] == ["mi"]
    ops = az_owner.ok("deployment", "operation", "group", "list", "-g", rg, "-n", "mi")
    assert sorted(o["properties"]["provisioningState"] for o in ops) == ["Succeeded", "Succeeded"]
    what_if = az_owner.ok("deployment", "group", "what-if", "-g", rg, "--template-file", template,
                          "--parameters", f"managedIdentityName={identity}", "location=local", "--no-pretty-print")
    assert sorted(c["changeType"] for c in what_if["changes"]) == ["NoChange", "NoChange"], what_if
    az_owner.ok("deployment", "group", "delete", "-g", rg, "-n", "mi")
    assert az_owner.ok("deployment", "group", "list", "-g", rg) == []


def test_az_deployment_without_the_right_to_assign_roles_is_refused(az_contributor: Az) -> None:
    rg = _group(az_contributor)
    result = az_contributor.run("deployment", "group", "create", "-g", rg, "--template-file",
                                str(TEMPLATES / "rbac-managedidentity.json"), "--parameters",
                                f"managedIdentityName=mi-{secrets.token_hex(4)}", "location=local")
    assert result.returncode != 0, str(result)
    assert "Microsoft.Authorization/roleAssignments/write" in result.stderr, str(result)


def test_az_reports_a_template_error(az_owner: Az, tmp_path: Path) -> None:
    rg = _group(az_owner)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0", "resources": [{
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31",
            "name": "[concat('mi', nosuch())]", "location": "local"}]}))
    result = az_owner.run("deployment", "group", "create", "-g", rg, "--template-file", str(bad))
    assert result.returncode != 0 and "InvalidTemplate" in result.stderr, str(result)
    assert "nosuch" in result.stderr, str(result)
