"""Looking at a real server's processes from a test: its workers (children), whether one is alive, whether its
port still answers. Linux /proc only, as the tests that use it."""

from __future__ import annotations

import socket
from pathlib import Path


def _stat(pid: str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: [state, ppid, ...], or None once it is gone."""
    try:
        return (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int, *, live_only: bool = False) -> list[int]:
    """The processes whose parent is `pid`; with `live_only`, less zombies (a dead worker not reaped yet serves
    nothing)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields is not None and int(fields[1]) == pid and not (live_only and fields[0] in ("Z", "X")):
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie serves nothing; its reaper is not us)."""
    fields = _stat(str(pid))
    return fields is not None and fields[0] not in ("Z", "X")


def listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
