"""The answer of `RbacIndex.authorize`: allowed or not, the assignments that granted, and why.

The hot path only collects facts; `Decision.reason` turns them into prose when someone asks (a log
line, an error message, the "why was this denied?" page).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from cielo.rbac.model import RoleAssignment


class Outcome(StrEnum):
    """What one of the principal's assignments on the scope chain did for the requested action."""

    GRANTS = "grants"
    NOT_INCLUDED = "not-included"
    CONTROL_PLANE_ONLY = "control-plane-only"  # the role has the action in Actions, but a data action was asked
    CONDITION_NOT_EVALUATED = "condition-not-evaluated"  # fails closed
    PENDING = "pending-propagation"
    UNKNOWN_ROLE = "unknown-role"


class Evaluation(NamedTuple):
    assignment: RoleAssignment
    role_name: str | None
    outcome: Outcome
    effective_at: float = 0.0


class Decision(NamedTuple):
    """`allowed` is the answer; `bool(decision)` is `decision.allowed` (not the tuple's truthiness).

    A NamedTuple rather than a frozen dataclass: as immutable, and several times cheaper to build on
    the hot path (a frozen dataclass's `__init__` costs ~1 µs here).

    `evaluations` lists every assignment of the principal (or of its groups) at the scope or above it,
    from `/` downwards, with what each did. `matched` are those that granted the action.
    """

    allowed: bool
    action: str
    scope: str
    data_action: bool
    principal_id: str
    evaluations: tuple[Evaluation, ...] = ()
    evaluated_at: float = 0.0

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def matched(self) -> tuple[RoleAssignment, ...]:
        return tuple(e.assignment for e in self.evaluations if e.outcome is Outcome.GRANTS)

    @property
    def missing(self) -> str | None:
        """The action that nothing granted, when denied."""
        return None if self.allowed else self.action

    @property
    def reason(self) -> str:
        kind = "data action" if self.data_action else "action"
        if self.allowed:
            grants = "; ".join(self._describe(e) for e in self.evaluations if e.outcome is Outcome.GRANTS)
            return f"Allowed: {kind} '{self.action}' at '{self.scope}' is granted by {grants}."
        head = (
            f"Denied: no role assignment at '{self.scope}' or above it grants {kind} '{self.action}' "
            f"to principal '{self.principal_id}' or its groups."
        )
        if not self.evaluations:
            return head + " The principal has no role assignments at this scope or above it."
        return head + " The principal has " + "; ".join(self._explain(e) for e in self.evaluations) + "."

    def _describe(self, e: Evaluation) -> str:
        a = e.assignment
        role = f"role '{e.role_name}'" if e.role_name is not None else f"role definition '{a.role_definition_id}'"
        via = f", via group '{a.principal_id}'" if a.principal_id != self.principal_id else ""
        return f"{role} assigned at '{a.scope}' (assignment {a.id}{via})"

    def _explain(self, e: Evaluation) -> str:
        what = self._describe(e)
        if e.outcome is Outcome.NOT_INCLUDED:
            return f"{what}, which does not include it"
        if e.outcome is Outcome.CONTROL_PLANE_ONLY:
            return f"{what}, which has it only as a control-plane action (Actions never grant data actions)"
        if e.outcome is Outcome.CONDITION_NOT_EVALUATED:
            return f"{what}, which would grant it but has a condition, and conditions are not evaluated (fail closed)"
        if e.outcome is Outcome.PENDING:
            left = max(0.0, e.effective_at - self.evaluated_at)
            return f"{what}, which grants it once propagated, in {left:.0f} s"
        if e.outcome is Outcome.UNKNOWN_ROLE:
            return f"{what}, whose role definition no longer exists"
        return f"{what}, which grants it"
