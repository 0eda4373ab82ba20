"""`cielo deployment group …` run in-process: az's options (`--template-file`, `--parameters @file` and NAME=VALUE,
`--mode`, `--no-wait`), with what ARM then holds (docs/templates.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from inproc import World, unique
from inproc_cli import Cli, signed_in_cli

from cielo.cli import deployment

TEMPLATES = Path(__file__).parent.parent / "templates"


@pytest.fixture()
def cli(world: World, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setattr(deployment, "POLL_INTERVAL_S", 0)
    with signed_in_cli(world, tmp_path_factory, tmp_path) as runner:
        yield runner


@pytest.fixture()
def group(cli: Cli) -> Iterator[str]:
    name = unique("cli-dep")
    cli.ok("group", "create", "-n", name, "-l", "local", "-o", "none")
    yield name
    cli.ok("group", "delete", "-n", name, "--yes")


def test_create_show_list_what_if_and_delete(cli: Cli, world: World, group: str, tmp_path: Path) -> None:
    identity = unique("mi")
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/"
                                             "deploymentParameters.json#", "contentVersion": "1.0.0.0",
                                  "parameters": {"managedIdentityName": {"value": "overridden"}}}))
    template = str(TEMPLATES / "rbac-managedidentity.json")
    created = cli.json("deployment", "group", "create", "-g", group, "--template-file", template,
                       "--parameters", f"@{params}", f"managedIdentityName={identity}", "--parameters",
                       "location=local")
    assert created["name"] == "rbac-managedidentity"
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert created["properties"]["parameters"]["managedIdentityName"]["value"] == identity
    shown = cli.ok("deployment", "group", "show", "-g", group, "-n", "rbac-managedidentity", "--query",
                   "properties.outputResources[0].id", "-o", "tsv")
    assert shown.strip().endswith(f"/userAssignedIdentities/{identity}")
    listed = cli.json("deployment", "group", "list", "-g", group)
    assert [d["name"] for d in listed] == ["rbac-managedidentity"]
    what_if = cli.json("deployment", "group", "what-if", "-g", group, "--template-file", template, "--parameters",
                       f"managedIdentityName={identity}", "location=local")
    assert sorted(c["changeType"] for c in what_if["properties"]["changes"]) == ["NoChange", "NoChange"]
    validated = cli.json("deployment", "group", "validate", "-g", group, "--template-file", template,
                         "--parameters", f"managedIdentityName={identity}", "location=local")
    assert validated["properties"]["provisioningState"] == "Succeeded"
    cli.ok("deployment", "group", "delete", "-g", group, "-n", "rbac-managedidentity")
    assert cli.json("deployment", "group", "list", "-g", group) == []


def test_a_failed_deployment_and_refusals_are_errors(cli: Cli, group: str, tmp_path: Path) -> None:
    template = str(TEMPLATES / "foundry-getting-started.json")
    failed = cli.fails("deployment", "group", "create", "-g", group, "-n", "f", "--template-file", template,
                       "--parameters", f"foundryName={unique('foundry')}", "modelName=SmolLM2-135M-Instruct",
                       "modelFormat=HuggingFace", "modelVersion=1", "modelCapacity=2")
    assert "DeploymentFailed" in failed and "Microsoft.CognitiveServices/accounts/projects" in failed
    bad = cli.fails("deployment", "group", "create", "-g", group, "--template-file", template, "--parameters",
                    "modelCapacity=many")
    assert "'many' is not a valid int" in bad
    invalid = cli.fails("deployment", "group", "validate", "-g", group, "--template-file", template,
                        "--parameters", "nosuch=1")
    assert "InvalidTemplate" in invalid and "nosuch" in invalid
