"""core/arm_ids.py: parsing ARM ids (keywords in any case, names kept as written), and walking up and down them."""

from __future__ import annotations

import pytest

from cielo.core.arm_ids import InvalidResourceId, ResourceId, parse

SUB = "11111111-2222-3333-4444-555555555555"
ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/My-RG/providers/Microsoft.CognitiveServices/accounts/Acct"


@pytest.mark.parametrize(("text", "parsed", "type_", "name"), [
    (f"/subscriptions/{SUB}", ResourceId(SUB), "Microsoft.Resources/subscriptions", SUB),
    (f"/SUBSCRIPTIONS/{SUB}/resourcegroups/My-RG/", ResourceId(SUB, "My-RG"), "Microsoft.Resources/resourceGroups",
     "My-RG"),
    (ACCOUNT, ResourceId(SUB, "My-RG", "Microsoft.CognitiveServices", ("accounts",), ("Acct",)),
     "Microsoft.CognitiveServices/accounts", "Acct"),
    (f"{ACCOUNT}/deployments/Dep",
     ResourceId(SUB, "My-RG", "Microsoft.CognitiveServices", ("accounts", "deployments"), ("Acct", "Dep")),
     "Microsoft.CognitiveServices/accounts/deployments", "Dep"),
    (f"/subscriptions/{SUB}/PROVIDERS/Microsoft.Authorization/roleDefinitions/r1",
     ResourceId(SUB, None, "Microsoft.Authorization", ("roleDefinitions",), ("r1",)),
     "Microsoft.Authorization/roleDefinitions", "r1"),
])
def test_parse(text: str, parsed: ResourceId, type_: str, name: str) -> None:
    assert parse(text) == parsed
    assert (parsed.type, parsed.name) == (type_, name)
    assert parse(parsed.id) == parsed  # the canonical form parses back to the same id
    assert parsed.key == parsed.id.lower()


@pytest.mark.parametrize("text", [
    "", "/", "/subscriptions", "/subscriptions/", "/tenants/x", f"/subscriptions/{SUB}/resourceGroups",
    f"/subscriptions/{SUB}/resourceGroups//providers/A/b/c", f"/subscriptions/{SUB}/resourceGroups/rg/things/x",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.X", f"/subscriptions/{SUB}/providers/Microsoft.X/t",
    f"/subscriptions/{SUB}/providers/Microsoft.X/t/n/u", f"/subscriptions/{SUB}/providers/Microsoft.X/t//u/v",
])
def test_not_an_id(text: str) -> None:
    with pytest.raises(InvalidResourceId, match="is not a valid resource id"):
        parse(text)


def test_children_and_parents() -> None:
    group = ResourceId(SUB, "My-RG")
    with pytest.raises(InvalidResourceId, match="needs a provider namespace"):
        group.child("accounts", "Acct")
    account = group.child("accounts", "Acct", "Microsoft.CognitiveServices")
    assert account.id == ACCOUNT
    deployment = account.child("deployments", "Dep")
    assert deployment.id == f"{ACCOUNT}/deployments/Dep"
    assert deployment.child("x", "y", "Ignored.Namespace").namespace == "Microsoft.CognitiveServices"
    chain = []
    here: ResourceId | None = deployment
    while here is not None:
        chain.append(here.id)
        here = here.parent
    assert chain == [f"{ACCOUNT}/deployments/Dep", ACCOUNT, f"/subscriptions/{SUB}/resourceGroups/My-RG",
                     f"/subscriptions/{SUB}"]
    top = parse(f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/r1")
    assert top.parent == ResourceId(SUB)
