"""The ARM route table: which row a path and method reach, what they capture, and which 404 or 405 answers the rest.
Pure: nothing runs but the matcher."""

from __future__ import annotations

import pytest

from cielo.api import arm, arm_compute
from cielo.api.arm_routes import Pattern

SUB = "/subscriptions/0000/resourceGroups/RG1"


def _resolve(method: str, path: str):  # type: ignore[no-untyped-def]
    return arm.TABLE.resolve(method, [p for p in path.split("/") if p])


@pytest.mark.parametrize(("method", "path", "handler", "params"), [
    ("GET", "/subscriptions", arm.list_subscriptions_op, {}),
    ("GET", "/subscriptions/AbC", arm.get_subscription, {"subscriptionId": "AbC"}),
    ("HEAD", "/SUBSCRIPTIONS/s/resourcegroups/Rg", arm.head_group, {"subscriptionId": "s", "resourceGroupName": "Rg"}),
    ("POST", f"{SUB}/providers/microsoft.cognitiveservices/ACCOUNTS/a1/listkeys", arm.list_keys,
     {"subscriptionId": "0000", "resourceGroupName": "RG1", "accountName": "a1"}),
    ("PUT", f"{SUB}/providers/Microsoft.CognitiveServices/accounts/a1/deployments/d.1", arm.put_deployment,
     {"subscriptionId": "0000", "resourceGroupName": "RG1", "accountName": "a1", "deploymentName": "d.1"}),
    ("GET", "/providers/Microsoft.Authorization/roleAssignments", arm.list_assignments, {"scope": "/"}),
    ("PUT", f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/g", arm.put_role_definition,
     {"scope": SUB, "roleDefinitionId": "g"}),
    # The scope is read from the right: the last `providers/Microsoft.Authorization` decides.
    ("GET", "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x/providers/Microsoft.Authorization/"
     "permissions", arm.permissions,
     {"scope": "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x"}),
    ("GET", f"{SUB}/providers/microsoft.compute/VIRTUALMACHINES/vm1", arm_compute.get_typed,
     {"subscriptionId": "0000", "resourceGroupName": "RG1", "namespace": "microsoft.compute",
      "resourceType": "VIRTUALMACHINES", "resourceName": "vm1"}),
])
def test_a_path_reaches_its_route_with_its_captures(method, path, handler, params):  # type: ignore[no-untyped-def]
    found = _resolve(method, path)
    assert found.route is not None and found.route.handler is handler
    assert found.params == params


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/subscriptions/s"),
    ("DELETE", f"{SUB}/resources"),
    ("POST", f"{SUB}/providers/Microsoft.CognitiveServices/accounts/a"),
    ("GET", f"{SUB}/providers/Microsoft.CognitiveServices/accounts/a/listKeys"),
    ("POST", "/providers/Microsoft.Authorization/roleAssignments/x"),
    ("POST", f"{SUB}/providers/Microsoft.Web/sites/w"),
])
def test_a_wrong_method_on_a_served_path_is_method_not_allowed(method, path):  # type: ignore[no-untyped-def]
    found = _resolve(method, path)
    assert found.route is None and found.refusal is arm._method_not_allowed


@pytest.mark.parametrize(("method", "path", "rest_or_message"), [
    # Action paths answer a wrong method as an unknown path.
    ("POST", "/subscriptions/s/providers/Microsoft.Authorization/permissions", "permissions"),
    ("GET", "/providers/Microsoft.Authorization/checkAccess", "checkAccess"),
    ("GET", "/providers/Microsoft.Authorization/roleAssignments/a/b", "roleAssignments/a/b"),
    ("GET", "/providers/Microsoft.Authorization/nothing", "nothing"),
])
def test_unserved_authorization_paths_name_their_tail(method, path, rest_or_message):  # type: ignore[no-untyped-def]
    found = _resolve(method, path)
    assert found.route is None and found.params["rest"] == rest_or_message


def test_pattern_choices_keep_the_clients_case_and_refuse_others() -> None:
    pattern = Pattern.compile("/a/{ns:Microsoft.Compute|Microsoft.Web}/{name}")
    assert pattern.match(["A", "microsoft.WEB", "x"], ["a", "microsoft.web", "x"]) == {"ns": "microsoft.WEB",
                                                                                      "name": "x"}
    assert pattern.match(["a", "Microsoft.Storage", "x"], ["a", "microsoft.storage", "x"]) is None


def test_every_route_that_names_an_action_has_a_scope() -> None:
    assert all(r.scope is not None for r in arm.TABLE.routes if r.action is not None)
    # 33 operations on ARM resources + 26 for the 4 compute/identity types + 2 providerOperations reads
    assert len(arm.TABLE.routes) >= 61
