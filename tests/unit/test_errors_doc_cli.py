"""`python -m cielo.errors_doc [--check]`: writes the error reference, or (with --check) says on stderr that the
file is stale and exits 1. Run here against a file of the test's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from cielo import errors_doc


def test_write_then_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "errors.md"
    monkeypatch.setattr(errors_doc, "DOC", doc)
    assert errors_doc.main(["--check"]) == 1  # missing
    assert errors_doc.main([]) == 0
    assert doc.read_text(encoding="utf-8") == errors_doc.render()
    assert errors_doc.main(["--check"]) == 0
    doc.write_text(doc.read_text(encoding="utf-8") + "\nhand edit\n", encoding="utf-8")
    assert errors_doc.main(["--check"]) == 1
    assert capsys.readouterr().err.endswith(f"{doc} is stale: run `python -m cielo.errors_doc`.\n")
