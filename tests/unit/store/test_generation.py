"""store/generation.Generation: a change marker every process of a machine maps; a bump anywhere is seen at once."""

from __future__ import annotations

import os
from pathlib import Path

from cielo.store.generation import Generation


def test_every_bump_is_a_new_token_seen_by_every_instance(tmp_path: Path) -> None:
    writer, reader = Generation(tmp_path / "g"), Generation(tmp_path / "g")
    seen = {reader.token()}
    for _ in range(50):
        writer.bump()
        assert reader.token() == writer.token()
        seen.add(reader.token())
    assert len(seen) == 51


def test_a_bump_in_another_process_is_seen(tmp_path: Path) -> None:
    marker = Generation(tmp_path / "g")
    before = marker.token()
    pid = os.fork()
    if pid == 0:
        try:
            Generation(tmp_path / "g").bump()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert marker.token() != before
    again = marker.token()
    pid = os.fork()
    if pid == 0:  # a child that inherited the mapping writes through it
        try:
            marker.bump()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert marker.token() != again


def test_an_old_marker_file_is_converted_in_place(tmp_path: Path) -> None:
    path = tmp_path / "rbac.generation"
    path.write_text("0123456789abcdef")  # the old format: hex text, replaced by renames
    inode = path.stat().st_ino
    first, second = Generation(path), Generation(path)
    assert path.stat().st_ino == inode and path.stat().st_size == 16
    before = second.token()
    first.bump()
    assert second.token() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rbac.generation"]  # no temporary or lock files


def test_a_marker_replaced_by_a_rename_is_followed(tmp_path: Path) -> None:
    """An older Cielo bumps by writing a new file and renaming it over the marker (so does restoring a backup):
    a process mapping the old file looks at the path once a RECHECK_S and maps the new one."""
    path = tmp_path / "rbac.generation"
    marker = Generation(path)
    marker.RECHECK_S = 0.0  # look on every check
    before = marker.token()
    (tmp_path / "new").write_text("fedcba9876543210")
    os.replace(tmp_path / "new", path)
    after = marker.token()
    assert after != before
    Generation(path).bump()  # and bumps through the new file reach it
    assert marker.token() != after


def test_a_removed_marker_is_made_again(tmp_path: Path) -> None:
    path = tmp_path / "generation"
    marker = Generation(path)
    marker.RECHECK_S = 0.0
    before = marker.token()
    path.unlink()
    assert marker.token() != before and path.stat().st_size == 16
