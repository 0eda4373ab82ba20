"""Change markers for in-memory caches: a cache compares a marker's `token()` with what it saw last and reloads
when it differs; a writer calls `bump()` after changing what the cache holds.

Two implementations of `ChangeMarker`:

- `Generation`, the embedded default: a 16-byte file in the data directory that every process maps into memory
  (a shared mapping): a magic string, then 8 random bytes that every write replaces in place. A reader's check is
  a read of its own memory (no system call; a `stat` per check cost about a microsecond, several times per data
  plane request), and every process of one machine sees a write at once. A file in the old format (hex text,
  replaced by renames) is rewritten in place when first opened. Once a second each process also `stat`s the
  path: a file put in its place by a rename (an older Cielo's bump, a restored backup) is mapped then, so no
  process keeps reading a file nobody writes any more. Copying over the file in place (`cp`), which truncates
  it under the mappings, is not supported while Cielo runs.
- `cielo.shared.feed.RedisGeneration` (`--redis-url`), for replicas on several machines: a counter in Redis,
  pushed to every replica over pub/sub (docs/deployment.md, "Redis and replicas").
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path
from typing import Protocol

from cielo.core.file_lock import locked


class ChangeMarker(Protocol):
    def bump(self) -> None:
        """Tell every process (and replica) that what the marker covers has changed."""

    def token(self) -> tuple[int, int]:
        """A value that differs from every earlier one after a `bump` anywhere."""


class Generation:
    """The file implementation of `ChangeMarker`, shared by the processes of one machine."""

    RECHECK_S = 1.0  # how often a process looks whether the path is still the file it maps

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ino, self._map = _map_marker(path)
        self._checked = time.monotonic()

    def bump(self) -> None:
        self._recheck(time.monotonic())
        # Any value other than the last is a change; two writers at once leave one of theirs (or a mix): still new.
        self._map[len(_MAGIC):_SIZE] = os.urandom(8)

    def token(self) -> tuple[int, int]:
        now = time.monotonic()
        if now - self._checked >= self.RECHECK_S:
            self._recheck(now)
        return (self._ino, _VALUE.unpack_from(self._map, len(_MAGIC))[0])

    def _recheck(self, now: float) -> None:
        self._checked = now
        try:
            ino = os.stat(self._path).st_ino
        except FileNotFoundError:
            ino = -1
        if ino != self._ino:  # replaced (or removed): map what is there now, a new token either way
            self._ino, self._map = _map_marker(self._path)


def _map_marker(path: Path) -> tuple[int, mmap.mmap]:
    """The marker file at `path` (created, or converted from the old format, in place) and its mapping. A file this
    process may not write (left by another user) is replaced by a new one through a rename."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except PermissionError:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(_MAGIC + os.urandom(8))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        with locked(fd):
            if os.fstat(fd).st_size != _SIZE or os.pread(fd, len(_MAGIC), 0) != _MAGIC:
                os.pwrite(fd, _MAGIC + os.urandom(8), 0)  # in place: every process maps this one file
                os.ftruncate(fd, _SIZE)
        return os.fstat(fd).st_ino, mmap.mmap(fd, _SIZE)  # the mapping keeps the file open
    finally:
        os.close(fd)


_MAGIC = b"CIELOGN1"
_SIZE = len(_MAGIC) + 8
_VALUE = struct.Struct("<Q")
