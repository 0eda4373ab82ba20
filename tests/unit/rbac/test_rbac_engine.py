"""RbacIndex: evaluation semantics, index maintenance, custom roles, conditions, propagation, threads."""

from __future__ import annotations

import sys
import threading
import uuid
from datetime import UTC, datetime

import pytest

from cielo.core.clock import FrozenClock
from cielo.rbac import (
    COGNITIVE_SERVICES_OPENAI_USER,
    COGNITIVE_SERVICES_USER,
    CONTRIBUTOR,
    OWNER,
    READER,
    USER_ACCESS_ADMINISTRATOR,
    InvalidAction,
    InvalidRoleAssignment,
    InvalidRoleDefinition,
    InvalidScope,
    Outcome,
    Permission,
    Principal,
    RbacIndex,
    RoleAssignment,
    RoleAssignmentExists,
    RoleAssignmentUpdateNotPermitted,
    RoleDefinition,
    RoleDefinitionHasAssignments,
    RoleDefinitionNotFound,
    RoleDefinitionWithSameNameExists,
    ScopeNotAssignable,
    transitive_groups,
)

SUB = "/subscriptions/11111111-1111-1111-1111-111111111111"
RG = f"{SUB}/resourceGroups/rg-ai"
ACCOUNT = f"{RG}/providers/Microsoft.CognitiveServices/accounts/contoso"
DEPLOYMENT = f"{ACCOUNT}/deployments/gpt-4o"
CHAT = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"
WRITE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments/write"

ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "bbbbbbbb-0000-0000-0000-000000000002"
GROUP = "99999999-0000-0000-0000-00000000000a"


def gid() -> str:
    return str(uuid.uuid4())


def assign(index: RbacIndex, principal: str, role: RoleDefinition, scope: str, **kw: object) -> RoleAssignment:
    return index.add_assignment(RoleAssignment(gid(), scope, role.id, principal, **kw))  # type: ignore[arg-type]


@pytest.fixture()
def index() -> RbacIndex:
    return RbacIndex()


# ------------------------------------------------------------------------------ semantics
def test_no_assignments_denies_with_a_reason(index: RbacIndex) -> None:
    decision = index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True)
    assert not decision.allowed and not decision
    assert decision.missing == CHAT
    assert decision.matched == ()
    assert "no role assignments at this scope or above it" in decision.reason


def test_rg_assignment_is_inherited_by_an_account_below(index: RbacIndex) -> None:
    granted = assign(index, ALICE, COGNITIVE_SERVICES_USER, RG)
    decision = index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True)
    assert decision.allowed and decision
    assert decision.matched == (granted,)
    assert decision.missing is None
    assert "Cognitive Services User" in decision.reason and RG in decision.reason and granted.id in decision.reason


def test_inheritance_flows_downward_only(index: RbacIndex) -> None:
    assign(index, ALICE, COGNITIVE_SERVICES_OPENAI_USER, ACCOUNT)
    p = Principal(ALICE)
    assert index.authorize(p, CHAT, ACCOUNT, data_action=True).allowed
    assert index.authorize(p, CHAT, DEPLOYMENT, data_action=True).allowed
    assert not index.authorize(p, CHAT, RG, data_action=True).allowed
    assert not index.authorize(p, CHAT, SUB, data_action=True).allowed
    assert not index.authorize(p, CHAT, f"{RG}/providers/Microsoft.CognitiveServices/accounts/other",
                               data_action=True).allowed


def test_not_actions_are_restored_by_another_role(index: RbacIndex) -> None:
    assign(index, ALICE, CONTRIBUTOR, SUB)
    p = Principal(ALICE)
    denied = index.authorize(p, WRITE_ASSIGNMENT, RG, data_action=False)
    assert not denied.allowed
    assert denied.evaluations[0].outcome is Outcome.NOT_INCLUDED
    assert "Contributor" in denied.reason and "does not include it" in denied.reason
    uaa = assign(index, ALICE, USER_ACCESS_ADMINISTRATOR, RG)
    allowed = index.authorize(p, WRITE_ASSIGNMENT, ACCOUNT, data_action=False)
    assert allowed.allowed and allowed.matched == (uaa,)


def test_owner_has_no_data_actions_and_the_reason_says_so(index: RbacIndex) -> None:
    assign(index, ALICE, OWNER, SUB)
    decision = index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True)
    assert not decision.allowed
    assert decision.evaluations[0].outcome is Outcome.CONTROL_PLANE_ONLY
    assert "only as a control-plane action" in decision.reason


def test_control_and_data_questions_are_kept_apart(index: RbacIndex) -> None:
    assign(index, ALICE, COGNITIVE_SERVICES_OPENAI_USER, ACCOUNT)
    with pytest.raises(TypeError):
        index.authorize(Principal(ALICE), CHAT, ACCOUNT)  # type: ignore[call-arg]
    assert not index.authorize(Principal(ALICE), CHAT, ACCOUNT, data_action=False).allowed


def test_union_over_levels(index: RbacIndex) -> None:
    assign(index, ALICE, READER, "/")
    assign(index, ALICE, COGNITIVE_SERVICES_OPENAI_USER, ACCOUNT)
    decision = index.authorize(Principal(ALICE), "Microsoft.CognitiveServices/accounts/read", DEPLOYMENT,
                               data_action=False)
    assert decision.allowed and decision.matched[0].scope == "/"
    assert [e.outcome for e in decision.evaluations] == [Outcome.GRANTS, Outcome.GRANTS]


def test_denied_reason_lists_roles_the_principal_has(index: RbacIndex) -> None:
    assign(index, ALICE, READER, SUB)
    assign(index, ALICE, COGNITIVE_SERVICES_OPENAI_USER, ACCOUNT)
    reason = index.explain(Principal(ALICE), "Microsoft.CognitiveServices/accounts/listKeys/action", DEPLOYMENT,
                           data_action=False)
    assert reason.startswith("Denied:")
    assert f"role 'Reader' assigned at '{SUB}'" in reason
    assert f"role 'Cognitive Services OpenAI User' assigned at '{ACCOUNT}'" in reason


def test_scopes_and_ids_compare_case_insensitively(index: RbacIndex) -> None:
    assign(index, ALICE.upper(), COGNITIVE_SERVICES_USER, RG.upper())
    assert index.authorize(Principal(ALICE), CHAT, DEPLOYMENT.lower(), data_action=True).allowed
    assert index.authorize(Principal(ALICE.upper()), CHAT.upper(), DEPLOYMENT + "/", data_action=True).allowed


def test_scope_prefix_tricks_do_not_grant(index: RbacIndex) -> None:
    assign(index, ALICE, OWNER, "/subscriptions/a")
    p = Principal(ALICE)
    assert index.authorize(p, "Microsoft.Web/sites/write", "/subscriptions/a/resourceGroups/x", data_action=False)
    assert not index.authorize(p, "Microsoft.Web/sites/write", "/subscriptions/ab", data_action=False).allowed
    assert not index.authorize(p, "Microsoft.Web/sites/write", "/subscriptions/ab/resourceGroups/a",
                               data_action=False).allowed
    for bad in ("/subscriptions/a/../b", "/subscriptions/a%2F..%2Fb", "/subscriptions/a//resourceGroups/x",
                "/subscriptions/a/resourceGroups/x/.."):
        with pytest.raises(InvalidScope):
            index.authorize(p, "Microsoft.Web/sites/write", bad, data_action=False)


def test_malformed_action_raises(index: RbacIndex) -> None:
    with pytest.raises(InvalidAction):
        index.authorize(Principal(ALICE), "Microsoft.Web/*", SUB, data_action=False)


# ------------------------------------------------------------------------------ groups
def test_group_assignment_applies_to_members(index: RbacIndex) -> None:
    granted = assign(index, GROUP, COGNITIVE_SERVICES_OPENAI_USER, RG, principal_type="Group")
    member = Principal(ALICE, group_ids=frozenset({GROUP.upper()}))
    decision = index.authorize(member, CHAT, DEPLOYMENT, data_action=True)
    assert decision.allowed and decision.matched == (granted,)
    assert f"via group '{GROUP}'" in decision.reason
    assert not index.authorize(Principal(BOB), CHAT, DEPLOYMENT, data_action=True).allowed


def test_transitive_groups_with_cycles() -> None:
    memberships = {
        ALICE: ["g1"],
        "G1": ["g2"],
        "g2": ["g3", "G1"],  # cycle g1 -> g2 -> g1
        "g3": [ALICE.upper()],  # a cycle back to the member itself
        "g9": ["g1"],
    }
    assert transitive_groups(ALICE, memberships) == frozenset({"g1", "g2", "g3"})
    assert transitive_groups("nobody", memberships) == frozenset()


def test_nested_group_grant(index: RbacIndex) -> None:
    assign(index, "outer-group", READER, SUB, principal_type="Group")
    groups = transitive_groups(ALICE, {ALICE: ["inner-group"], "inner-group": ["outer-group"]})
    assert index.authorize(Principal(ALICE, group_ids=groups), "Microsoft.Web/sites/read", RG,
                           data_action=False).allowed


def test_many_groups_and_many_principals_at_one_scope(index: RbacIndex) -> None:
    groups = frozenset(f"group-{i}" for i in range(80))
    for i in range(100):
        assign(index, f"someone-{i}", READER, RG)
    assign(index, "group-77", COGNITIVE_SERVICES_USER, RG, principal_type="Group")
    assert index.authorize(Principal(ALICE, group_ids=groups), CHAT, DEPLOYMENT, data_action=True).allowed
    assert not index.authorize(Principal(ALICE, group_ids=frozenset({"group-1"})), CHAT, DEPLOYMENT,
                               data_action=True).allowed


# ------------------------------------------------------------------------------ maintenance
def test_removing_an_assignment_stops_the_grant_at_once(index: RbacIndex) -> None:
    a = assign(index, ALICE, COGNITIVE_SERVICES_USER, RG)
    assert index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True).allowed
    assert index.remove_assignment(a.id.upper()) == a
    assert not index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True).allowed
    assert index.remove_assignment(a.id) is None
    assert len(index) == 0 and index.list_assignments() == []


def test_removing_a_principal_drops_all_its_assignments(index: RbacIndex) -> None:
    assign(index, ALICE, COGNITIVE_SERVICES_USER, RG)
    assign(index, ALICE, OWNER, SUB)
    kept = assign(index, BOB, READER, SUB)
    removed = index.remove_principal(ALICE.upper())
    assert len(removed) == 2
    assert not index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True).allowed
    assert not index.authorize(Principal(ALICE), "Microsoft.Web/sites/write", RG, data_action=False).allowed
    assert index.list_assignments() == [kept]
    assert index.remove_principal(ALICE) == ()


def test_stored_assignments_are_normalised(index: RbacIndex) -> None:
    raw = RoleAssignment(
        gid().upper(),
        RG.upper() + "/",
        f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER.id.upper()}",
        ALICE.upper(),
    )
    stored = index.add_assignment(raw)
    assert stored.id == raw.id.lower()
    assert stored.scope == f"{SUB.upper().replace('SUBSCRIPTIONS', 'subscriptions')}/resourceGroups/RG-AI"
    assert stored.role_definition_id == READER.id
    assert stored.principal_id == ALICE
    assert index.get_assignment(raw.id) == stored
    assert stored.resource_id == f"{stored.scope}/providers/Microsoft.Authorization/roleAssignments/{stored.id}"


def test_duplicate_and_idempotent_puts(index: RbacIndex) -> None:
    a = assign(index, ALICE, READER, RG)
    assert index.add_assignment(a) == a  # same name, same body: idempotent
    with pytest.raises(RoleAssignmentExists) as info:
        assign(index, ALICE, READER, RG.upper())
    assert info.value.existing_id == a.id and info.value.status == 409
    assert a.id.replace("-", "") in info.value.message
    with pytest.raises(RoleAssignmentUpdateNotPermitted):
        index.add_assignment(RoleAssignment(a.id, SUB, READER.id, ALICE))
    updated = index.add_assignment(RoleAssignment(a.id, RG, READER.id, ALICE, description="why"))
    assert index.get_assignment(a.id) == updated and len(index) == 1


@pytest.mark.parametrize(
    "bad",
    [
        RoleAssignment("not-a-guid", RG, READER.id, ALICE),
        RoleAssignment(str(uuid.uuid4()), RG, READER.id, ""),
        RoleAssignment(str(uuid.uuid4()), RG, READER.id, ALICE, principal_type="Robot"),  # type: ignore[arg-type]
    ],
)
def test_invalid_assignments(index: RbacIndex, bad: RoleAssignment) -> None:
    with pytest.raises(InvalidRoleAssignment):
        index.add_assignment(bad)
    assert len(index) == 0


def test_unknown_role_and_bad_scope(index: RbacIndex) -> None:
    with pytest.raises(RoleDefinitionNotFound) as info:
        index.add_assignment(RoleAssignment(gid(), RG, gid(), ALICE))
    assert info.value.code == "RoleDefinitionDoesNotExist"
    with pytest.raises(InvalidScope):
        index.add_assignment(RoleAssignment(gid(), "/subscriptions/x/resourceGroups", READER.id, ALICE))


def test_listing(index: RbacIndex) -> None:
    at_root = assign(index, ALICE, READER, "/")
    at_rg = assign(index, ALICE, COGNITIVE_SERVICES_USER, RG)
    at_account = assign(index, BOB, COGNITIVE_SERVICES_OPENAI_USER, ACCOUNT)
    other_rg = assign(index, BOB, READER, RG + "2")
    assert index.list_assignments(RG) == [at_rg]
    assert index.list_assignments(RG, include_inherited=True) == [at_root, at_rg]
    assert index.list_assignments(RG, include_below=True) == [at_rg, at_account]
    assert index.list_assignments(ACCOUNT, include_inherited=True, principal_id=ALICE.upper()) == [at_root, at_rg]
    assert sorted(a.id for a in index.list_assignments("/", include_below=True)) == sorted(
        a.id for a in (at_root, at_rg, at_account, other_rg)
    )
    assert {a.id for a in index.assignments_of(BOB)} == {at_account.id, other_rg.id}
    assert len(list(index)) == 4


# ------------------------------------------------------------------------------ conditions
def test_conditions_fail_closed(index: RbacIndex) -> None:
    conditional = assign(
        index, ALICE, COGNITIVE_SERVICES_USER, RG,
        condition="@Resource[Microsoft.CognitiveServices/accounts:name] StringEqualsIgnoreCase 'contoso'",
        condition_version="2.0",
    )
    decision = index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True)
    assert not decision.allowed
    assert decision.evaluations[0].assignment == conditional
    assert decision.evaluations[0].outcome is Outcome.CONDITION_NOT_EVALUATED
    assert "condition" in decision.reason and "fail closed" in decision.reason
    plain = assign(index, ALICE, COGNITIVE_SERVICES_OPENAI_USER, ACCOUNT)
    assert index.authorize(Principal(ALICE), CHAT, DEPLOYMENT, data_action=True).matched == (plain,)


# ------------------------------------------------------------------------------ custom roles
def custom_role(**kw: object) -> RoleDefinition:
    fields: dict[str, object] = {
        "id": gid(),
        "role_name": "Deployment Reader",
        "description": "reads deployments",
        "permissions": (
            Permission(
                actions=("Microsoft.CognitiveServices/accounts/deployments/read",),
                data_actions=("Microsoft.CognitiveServices/accounts/OpenAI/*",),
                not_data_actions=("Microsoft.CognitiveServices/accounts/OpenAI/fine-tunes/*",),
            ),
        ),
        "assignable_scopes": (RG,),
    }
    fields.update(kw)
    return RoleDefinition(**fields)  # type: ignore[arg-type]


def test_custom_role_lifecycle(index: RbacIndex) -> None:
    stored = index.add_role_definition(custom_role(id=gid().upper(), assignable_scopes=(RG.upper() + "/",)))
    assert stored.id == stored.id.lower() and stored.assignable_scopes == (RG.upper().replace(
        "/SUBSCRIPTIONS/", "/subscriptions/").replace("/RESOURCEGROUPS/", "/resourceGroups/"),)
    assert index.find_role("deployment reader") == stored
    assert index.get_role_definition(stored.resource_id) == stored
    assert stored in index.role_definitions()
    with pytest.raises(ScopeNotAssignable):
        assign(index, ALICE, stored, SUB)
    with pytest.raises(ScopeNotAssignable):
        assign(index, ALICE, stored, RG + "2")
    a = assign(index, ALICE, stored, ACCOUNT)
    p = Principal(ALICE)
    assert index.authorize(p, CHAT, DEPLOYMENT, data_action=True).allowed
    assert not index.authorize(p, "Microsoft.CognitiveServices/accounts/OpenAI/fine-tunes/write", DEPLOYMENT,
                               data_action=True).allowed
    # narrowing below an existing assignment, or deleting while in use, is refused
    with pytest.raises(RoleDefinitionHasAssignments):
        index.add_role_definition(custom_role(id=stored.id, assignable_scopes=(RG + "2",)))
    with pytest.raises(RoleDefinitionHasAssignments):
        index.remove_role_definition(stored.id)
    # an update takes effect for existing assignments at once
    index.add_role_definition(custom_role(id=stored.id, permissions=(Permission(actions=("*/read",)),)))
    assert not index.authorize(p, CHAT, DEPLOYMENT, data_action=True).allowed
    index.remove_assignment(a.id)
    assert index.remove_role_definition(stored.id) is not None
    assert index.get_role_definition(stored.id) is None
    assert index.remove_role_definition(stored.id) is None


def test_custom_role_validation(index: RbacIndex) -> None:
    with pytest.raises(InvalidRoleDefinition):
        index.add_role_definition(custom_role(assignable_scopes=("/",)))
    with pytest.raises(InvalidRoleDefinition):
        index.add_role_definition(custom_role(assignable_scopes=(ACCOUNT,)))
    with pytest.raises(InvalidRoleDefinition):
        index.add_role_definition(custom_role(assignable_scopes=()))
    with pytest.raises(InvalidRoleDefinition):
        index.add_role_definition(custom_role(id="nope"))
    with pytest.raises(InvalidRoleDefinition):
        index.add_role_definition(custom_role(id=OWNER.id))
    with pytest.raises(InvalidRoleDefinition):
        index.add_role_definition(custom_role(role_type="BuiltInRole"))
    with pytest.raises(InvalidRoleDefinition):
        index.remove_role_definition(READER.id)
    with pytest.raises(RoleDefinitionWithSameNameExists):
        index.add_role_definition(custom_role(role_name="reader"))
    with pytest.raises(InvalidAction):
        index.add_role_definition(custom_role(permissions=(Permission(actions=("Microsoft.Comp*/read",)),)))
    with pytest.raises(InvalidScope):
        index.add_role_definition(custom_role(assignable_scopes=("/subscriptions/../x",)))
    assert index.find_role("Deployment Reader") is None
    first = index.add_role_definition(custom_role())
    with pytest.raises(RoleDefinitionWithSameNameExists):
        index.add_role_definition(custom_role())
    renamed = index.add_role_definition(custom_role(id=first.id, role_name="Renamed"))
    assert index.find_role("Deployment Reader") is None and index.find_role("renamed") == renamed


def test_custom_roles_at_construction_and_management_group_scope() -> None:
    role = custom_role(assignable_scopes=("/providers/Microsoft.Management/managementGroups/mg1", SUB))
    index = RbacIndex(custom_roles=[role])
    assert index.find_role(role.role_name) is not None
    assign(index, ALICE, role, ACCOUNT)


# ------------------------------------------------------------------------------ propagation delay
def test_propagation_delay_with_a_fake_clock() -> None:
    clock = FrozenClock(start=1_000.0)
    index = RbacIndex(clock=clock, propagation_delay_s=300)
    a = assign(index, ALICE, COGNITIVE_SERVICES_USER, RG)
    p = Principal(ALICE)
    pending = index.authorize(p, CHAT, DEPLOYMENT, data_action=True)
    assert not pending.allowed
    assert pending.evaluations[0].outcome is Outcome.PENDING
    assert "in 300 s" in pending.reason
    clock.advance(299.9)
    assert not index.authorize(p, CHAT, DEPLOYMENT, data_action=True).allowed
    clock.advance(0.1)
    assert index.authorize(p, CHAT, DEPLOYMENT, data_action=True).allowed
    index.add_assignment(RoleAssignment(a.id, RG, a.role_definition_id, ALICE, description="edited"))
    assert index.authorize(p, CHAT, DEPLOYMENT, data_action=True).allowed  # an update does not re-propagate
    index.remove_assignment(a.id)
    assert not index.authorize(p, CHAT, DEPLOYMENT, data_action=True).allowed  # removal: at once


def test_propagation_counts_from_created_on() -> None:
    created = datetime(2025, 1, 1, tzinfo=UTC)
    clock = FrozenClock(start=created.timestamp() + 10)
    index = RbacIndex(clock=clock, propagation_delay_s=60)
    assign(index, ALICE, READER, SUB, created_on=created)
    assign(index, BOB, READER, SUB, created_on=datetime(2024, 1, 1, tzinfo=UTC))  # loaded at start-up: old
    assert not index.authorize(Principal(ALICE), "a.b/c/read", SUB, data_action=False).allowed
    assert index.authorize(Principal(BOB), "a.b/c/read", SUB, data_action=False).allowed
    clock.advance(50)
    assert index.authorize(Principal(ALICE), "a.b/c/read", SUB, data_action=False).allowed


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError):
        RbacIndex(propagation_delay_s=-1)


# ------------------------------------------------------------------------------ threads
def test_readers_never_see_a_torn_index_while_one_writer_churns() -> None:
    index = RbacIndex()
    stable = assign(index, ALICE, COGNITIVE_SERVICES_USER, RG)
    groups = frozenset(f"g{i}" for i in range(3))
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for i in range(3000):
                a = assign(index, f"churn-{i}", READER, RG if i % 2 else ACCOUNT)
                if i % 3:
                    index.remove_assignment(a.id)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        p = Principal(ALICE, group_ids=groups)
        try:
            while not stop.is_set():
                assert index.authorize(p, CHAT, DEPLOYMENT, data_action=True).matched == (stable,)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    # Hand the GIL over every 0.1 ms instead of every 5 ms: fifty times the thread switches, so many more points
    # where a reader runs in the middle of a write; and the writer, queued behind three spinning readers whenever
    # it gives the GIL up, waits 0.3 ms for it instead of 15 ms (the test took 1-6 s, now ~0.2 s).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
