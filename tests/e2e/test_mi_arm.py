"""Managed identities through the CLI and ARM: `vm create --assign-identity`, `vm|vmss|webapp identity ...`,
`identity create|show|list|delete`, and `login --identity` (az's output shapes, from Azure/azure-cli's
profile/custom.py and azure-cli-core's _profile.py).

Output shapes are az's. Removing a system-assigned identity deletes its service principal and its role
assignments; deleting a user-assigned identity detaches it from every resource and takes its principal
and role assignments with it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cli_helpers import make_cli
from mi_support import COGNITIVE, READER_ROLE, RG, MiServer, start_agent, start_agents, start_mi_server

pytestmark = pytest.mark.e2e

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UAMI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
IMDS = {"api-version": "2018-02-01", "resource": COGNITIVE}


@pytest.fixture(scope="module")
def mi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiServer]:
    server = start_mi_server(tmp_path_factory, "mi-arm")
    yield server
    server.stop()  # every agent started in this module, then the server


def _uami_path(mi: MiServer, name: str) -> str:
    return f"/subscriptions/{mi.sub}/resourcegroups/{RG}/providers/{UAMI_TYPE}/{name}"


def _check_uami_shape(mi: MiServer, out: dict[str, Any], name: str) -> None:
    """`az identity create|show`: the 2023-01-31 Microsoft.ManagedIdentity identity, as az prints it."""
    assert set(out) == {"clientId", "id", "location", "name", "principalId", "resourceGroup", "tags", "tenantId",
                        "type"}, out
    assert out["id"] == _uami_path(mi, name)  # the provider spells `resourcegroups` in lower case
    assert out["name"] == name and out["resourceGroup"] == RG and out["type"] == UAMI_TYPE
    assert GUID.match(out["clientId"]) and GUID.match(out["principalId"]) and out["clientId"] != out["principalId"]
    assert out["tenantId"] == mi.tenant
    assert out["tags"] == {}


def _sp_status(mi: MiServer, principal_id: str) -> int:
    return mi.graph_status(f"/servicePrincipals/{principal_id}")


# ----------------------------------------------------------------------------- identity create/show/list/delete
def test_identity_create_show_list_delete(mi: MiServer) -> None:
    created = mi.cli.json("identity", "create", "-g", RG, "-n", "id-crud")
    _check_uami_shape(mi, created, "id-crud")
    assert mi.cli.json("identity", "show", "-g", RG, "-n", "id-crud") == created
    assert created in mi.cli.json("identity", "list", "-g", RG)
    # Its principal: a ManagedIdentity service principal whose appId is the clientId.
    sp = mi.graph(f"/servicePrincipals/{created['principalId']}").json()
    assert sp["servicePrincipalType"] == "ManagedIdentity" and sp["appId"] == created["clientId"], sp

    mi.cli.run("identity", "delete", "-g", RG, "-n", "id-crud")
    failed = mi.cli.fails("identity", "show", "-g", RG, "-n", "id-crud", code=3)  # az's ResourceNotFoundError
    assert "ResourceNotFound" in failed.stderr or "was not found" in failed.stderr
    assert _sp_status(mi, created["principalId"]) == 404


# ----------------------------------------------------------------------------- vm create --assign-identity
def test_vm_create_assign_identity_output(mi: MiServer) -> None:
    out = mi.cli.json("vm", "create", "-g", RG, "-n", "vm-created", "--assign-identity")
    assert set(out["identity"]) == {"systemAssignedIdentity", "userAssignedIdentities"}
    principal_id = out["identity"]["systemAssignedIdentity"]
    assert GUID.match(principal_id) and out["identity"]["userAssignedIdentities"] == {}
    assert out["resourceGroup"] == RG and out["name"] == "vm-created"
    block = mi.cli.json("vm", "identity", "show", "-g", RG, "-n", "vm-created")
    assert block == {"type": "SystemAssigned", "principalId": principal_id, "tenantId": mi.tenant}
    assert _sp_status(mi, principal_id) == 200

    uami = mi.create_uami("id-at-create")
    # az's space-separated list: [system] and a user-assigned identity's name.
    both = mi.cli.json("vm", "create", "-g", RG, "-n", "vm-created-2", "--assign-identity", "[system]", "id-at-create")
    assert GUID.match(both["identity"]["systemAssignedIdentity"])
    assert both["identity"]["userAssignedIdentities"] == {
        uami.resource_id: {"clientId": uami.client_id, "principalId": uami.principal_id}}
    only_user = mi.cli.json("vm", "create", "-g", RG, "-n", "vm-created-3", "--assign-identity", uami.resource_id)
    assert only_user["identity"]["systemAssignedIdentity"] == ""
    assert list(only_user["identity"]["userAssignedIdentities"]) == [uami.resource_id]


# ----------------------------------------------------------------------------- vm identity assign/remove/show
def test_vm_identity_assign_remove_show(mi: MiServer) -> None:
    mi.put_vm("vm-ids", system=False)
    assert mi.cli.run("vm", "identity", "show", "-g", RG, "-n", "vm-ids", "-o", "json").stdout.strip() in ("", "null")
    created = mi.create_uami("id-vm")
    uami = {"id": created.resource_id, "clientId": created.client_id, "principalId": created.principal_id}

    system = mi.cli.json("vm", "identity", "assign", "-g", RG, "-n", "vm-ids")
    assert GUID.match(system["systemAssignedIdentity"]) and system["userAssignedIdentities"] == {}
    both = mi.cli.json("vm", "identity", "assign", "-g", RG, "-n", "vm-ids", "--identities", "id-vm")
    assert both == {"systemAssignedIdentity": system["systemAssignedIdentity"], "userAssignedIdentities": {
        uami["id"]: {"clientId": uami["clientId"], "principalId": uami["principalId"]}}}
    block = mi.cli.json("vm", "identity", "show", "-g", RG, "-n", "vm-ids")
    assert block["type"] == "SystemAssigned, UserAssigned"
    assert block["principalId"] == system["systemAssignedIdentity"] and block["tenantId"] == mi.tenant
    assert block["userAssignedIdentities"] == both["userAssignedIdentities"]

    removed = mi.cli.json("vm", "identity", "remove", "-g", RG, "-n", "vm-ids", "--identities", "id-vm")
    assert removed == {"systemAssignedIdentity": system["systemAssignedIdentity"], "userAssignedIdentities": {}}
    assert mi.cli.json("vm", "identity", "show", "-g", RG, "-n", "vm-ids")["type"] == "SystemAssigned"
    assert _sp_status(mi, uami["principalId"]) == 200  # detaching a user-assigned identity keeps it


def test_removing_the_system_identity_deletes_its_principal_and_assignments(mi: MiServer) -> None:
    principal_id = mi.cli.json("vm", "create", "-g", RG, "-n", "vm-drop", "--assign-identity")["identity"][
        "systemAssignedIdentity"]
    mi.assign_role(principal_id, mi.account_id)
    mi.assign_role(principal_id, mi.rg_id(), role=READER_ROLE)
    assert len(mi.assignments_of(principal_id)) == 2
    removed = mi.cli.json("vm", "identity", "remove", "-g", RG, "-n", "vm-drop")
    assert removed == {"systemAssignedIdentity": "", "userAssignedIdentities": {}}
    assert _sp_status(mi, principal_id) == 404
    assert mi.assignments_of(principal_id) == []
    # Enabling it again makes a new principal.
    again = mi.cli.json("vm", "identity", "assign", "-g", RG, "-n", "vm-drop")["systemAssignedIdentity"]
    assert GUID.match(again) and again != principal_id


# ----------------------------------------------------------------------------- scale sets and web apps
def test_vmss_identity_assign(mi: MiServer) -> None:
    uami = mi.create_uami("id-vmss")
    created = mi.cli.json("vmss", "create", "-g", RG, "-n", "vmss-1")
    assert created["type"] == "Microsoft.Compute/virtualMachineScaleSets" and created["identity"] is None
    out = mi.cli.json("vmss", "identity", "assign", "-g", RG, "-n", "vmss-1", "--identities", "[system]", "id-vmss")
    assert GUID.match(out["systemAssignedIdentity"])
    assert out["userAssignedIdentities"] == {
        uami.resource_id: {"clientId": uami.client_id, "principalId": uami.principal_id}}
    block = mi.cli.json("vmss", "identity", "show", "-g", RG, "-n", "vmss-1")
    assert block["type"] == "SystemAssigned, UserAssigned" and block["principalId"] == out["systemAssignedIdentity"]


def test_webapp_identity_assign_and_its_tokens(mi: MiServer) -> None:
    mi.cli.json("webapp", "create", "-g", RG, "-n", "site-1")
    out = mi.cli.json("webapp", "identity", "assign", "-g", RG, "-n", "site-1")
    assert GUID.match(out["systemAssignedIdentity"]) and out["userAssignedIdentities"] == {}
    site = mi.arm_ok("GET", mi.path("Microsoft.Web/sites", "site-1"), api="2023-01-01")
    assert site["type"] == "Microsoft.Web/sites" and site["identity"]["type"] == "SystemAssigned"
    # A web app's identity, through an agent enrolled with a web app host credential.
    agent = start_agent(mi, mi.host_credential_api("site-1", "Microsoft.Web/sites"), "site")
    try:
        answer = agent.app_service({"api-version": "2019-08-01", "resource": COGNITIVE})
        assert answer.status_code == 200, answer.text
        claims = mi.verify(answer.json()["access_token"], COGNITIVE)
        assert claims["oid"] == out["systemAssignedIdentity"]
        assert claims["xms_mirid"] == f"/subscriptions/{mi.sub}/resourcegroups/{RG}/providers/Microsoft.Web/sites/" \
            "site-1"
    finally:
        agent.stop()


# ----------------------------------------------------------------------------- one UAMI, two VMs; deletion
def test_one_user_assigned_identity_on_two_vms_then_deleted(mi: MiServer) -> None:
    shared = mi.create_uami("id-shared")
    for vm in ("vm-s1", "vm-s2"):
        block = mi.put_vm(vm, system=False, uamis=(shared,))["identity"]
        assert block["userAssignedIdentities"] == {
            shared.resource_id: {"clientId": shared.client_id, "principalId": shared.principal_id}}
    mi.assign_role(shared.principal_id, mi.account_id)
    agents = start_agents(mi, [(mi.host_credential_api("vm-s1"), "s1"), (mi.host_credential_api("vm-s2"), "s2")])
    try:
        for agent, vm in zip(agents, ("vm-s1", "vm-s2"), strict=True):  # each VM's only identity: no selector
            answer = agent.imds(IMDS)
            assert answer.status_code == 200, answer.text
            claims = mi.check_token(answer.json()["access_token"], shared)
            assert claims["xms_az_rid"] == mi.path("Microsoft.Compute/virtualMachines", vm)  # the host

        mi.cli.run("identity", "delete", "-g", RG, "-n", "id-shared")
        for vm in ("vm-s1", "vm-s2"):
            assert mi.arm_ok("GET", mi.path("Microsoft.Compute/virtualMachines", vm))["identity"] is None
        assert mi.assignments_of(shared.principal_id) == []
        assert _sp_status(mi, shared.principal_id) == 404
        for agent in agents:
            answer = agent.imds({**IMDS, "client_id": shared.client_id})
            assert answer.status_code == 400
            assert answer.json() == {"error": "invalid_request", "error_description": "Identity not found"}
    finally:
        for agent in agents:
            agent.stop()


# ----------------------------------------------------------------------------- login --identity
def test_login_identity(mi: MiServer) -> None:
    uami = mi.create_uami("id-login")
    system_principal = mi.put_vm("vm-login", uamis=(uami,))["identity"]["principalId"]
    for principal in (system_principal, uami.principal_id):
        mi.assign_role(principal, mi.account_id)
    agent = start_agent(mi, mi.host_credential("vm-login"), "login")
    try:
        host = make_cli(mi.server, mi.server.client_env(), mi.work, name="vm-login")

        # System-assigned, through the App Service variables the agent prints.
        app_env = agent.env("appservice")
        entries = host.json("login", "--identity", env=app_env)
        assert [e["id"] for e in entries] == [mi.sub]
        account = host.json("account", "show", env=app_env)
        assert account["id"] == mi.sub and account["tenantId"] == mi.tenant
        assert account["user"] == {"name": "systemAssignedIdentity", "type": "servicePrincipal",
                                   "assignedIdentityInfo": "MSI"}
        token = host.json("account", "get-access-token", "--resource", COGNITIVE, env=app_env)
        claims = mi.verify(token["accessToken"], COGNITIVE)
        assert claims["oid"] == system_principal and claims["idtyp"] == "app"
        assert token["tokenType"] == "Bearer" and token["tenant"] == mi.tenant
        assert token["expires_on"] > time.time() + 3600

        # User-assigned by client id, through IMDS.
        imds_env = agent.env("imds")
        entries = host.json("login", "--identity", "--username", uami.client_id, env=imds_env)
        assert entries[0]["user"] == {"name": "userAssignedIdentity", "type": "servicePrincipal",
                                      "assignedIdentityInfo": f"MSIClient-{uami.client_id}"}
        token = host.json("account", "get-access-token", "--resource", COGNITIVE, env=imds_env)
        mi.check_token(token["accessToken"], uami)

        # By resource id, as az also accepts it (the App Service protocol calls it mi_res_id).
        entries = host.json("login", "--identity", "--username", uami.resource_id, env=app_env)
        assert entries[0]["user"]["name"] == "userAssignedIdentity"
        token = host.json("account", "get-access-token", "--resource", COGNITIVE, env=app_env)
        mi.check_token(token["accessToken"], uami)
    finally:
        agent.stop()


# ----------------------------------------------------------------------------- ARM validation
def test_identity_blocks_that_are_refused(mi: MiServer) -> None:
    vm = mi.put_vm("vm-validate")
    principal_id = vm["identity"]["principalId"]
    path = mi.path("Microsoft.Compute/virtualMachines", "vm-validate")
    uami = mi.create_uami("id-validate")
    cases = [
        ({"identity": "SystemAssigned"}, "InvalidIdentity"),
        # No type: refused, not read as "None" (which would delete the system-assigned identity).
        ({"identity": {"userAssignedIdentities": {uami.resource_id: {}}}}, "InvalidIdentityType"),
        ({"identity": {"type": "Everything"}}, "InvalidIdentityType"),
        ({"identity": {"type": "UserAssigned"}}, "InvalidIdentity"),
        ({"identity": {"type": "UserAssigned", "userAssignedIdentities": {mi.path(UAMI_TYPE, "nope"): {}}}},
         "FailedIdentityOperation"),
    ]
    for method in ("PATCH", "PUT"):
        for body, code in cases:
            answer = mi.arm(method, path, body)
            assert answer.status_code == 400, (method, body, answer.text)
            assert answer.json()["error"]["code"] == code, (body, answer.text)
    assert mi.arm_ok("GET", path)["identity"]["principalId"] == principal_id
    assert _sp_status(mi, principal_id) == 200


def test_deleting_a_resource_group_deletes_its_identities_principals(mi: MiServer) -> None:
    """A VM's system identity and a user-assigned identity in a deleted group lose their principals and their
    role assignments outside the group too (the account's scope is in another group)."""
    rg = "rg-doomed"
    mi.cli.json("group", "create", "-n", rg, "-l", "local")
    vm_principal = mi.cli.json("vm", "create", "-g", rg, "-n", "vm-doomed", "--assign-identity")["identity"][
        "systemAssignedIdentity"]
    uami = mi.cli.json("identity", "create", "-g", rg, "-n", "uami-doomed")
    for principal in (vm_principal, uami["principalId"]):
        mi.assign_role(principal, mi.account_id)
        assert len(mi.assignments_of(principal)) == 1
    mi.cli.run("group", "delete", "-n", rg, "--yes")
    for principal in (vm_principal, uami["principalId"]):
        assert _sp_status(mi, principal) == 404
        assert mi.assignments_of(principal) == []
