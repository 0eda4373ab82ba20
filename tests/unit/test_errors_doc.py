"""docs/errors.md is generated from the exception tree: this fails when the committed file is stale."""

from __future__ import annotations

from cielo import errors_doc


def test_committed_errors_doc_is_current() -> None:
    assert errors_doc.DOC.read_text(encoding="utf-8") == errors_doc.render(), (
        "docs/errors.md is stale: run `python -m cielo.errors_doc`")


def test_every_surface_lists_its_classes() -> None:
    text = errors_doc.render()
    for needle in ("`cielo.errors.InvalidOAuthScope`", "`SubscriptionNotFound` | 404",
                   "`Request_ResourceNotFound` | 404", "`PermissionDenied` | 401", "`cielo.rbac.errors.InvalidScope`"):
        assert needle in text
