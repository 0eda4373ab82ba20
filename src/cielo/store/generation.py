"""Change markers for in-memory caches: a cache compares a marker's `token()` with what it saw last and reloads
when it differs; a writer calls `bump()` after changing what the cache holds.

Two implementations of `ChangeMarker`:

- `Generation`, the embedded default: a 16-byte file in the data directory that every process maps into memory
  (a shared mapping): a magic string, then 8 random bytes that every write replaces in place. A reader's check is
  a read of its own memory (no system call; a `stat` per check cost about a microsecond, several times per data
  plane request), and every process of one machine sees a write at once. A file in the old format (hex text,
  replaced by renames) is rewritten in place when first opened.
- `cielo.shared.feed.RedisGeneration` (`--redis-url`), for replicas on several machines: a counter in Redis,
  pushed to every replica over pub/sub (docs/deployment.md, "Redis and replicas").
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class ChangeMarker(Protocol):
    def bump(self) -> None:
        """Tell every process (and replica) that what the marker covers has changed."""

    def token(self) -> tuple[int, int]:
        """A value that differs from every earlier one after a `bump` anywhere."""


class Generation:
    """The file implementation of `ChangeMarker`, shared by the processes of one machine."""

    def __init__(self, path: Path) -> None:
        self._path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            with _locked(fd):
                if os.fstat(fd).st_size != _SIZE or os.pread(fd, len(_MAGIC), 0) != _MAGIC:
                    os.pwrite(fd, _MAGIC + os.urandom(8), 0)  # in place: every process maps this one file
                    os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)  # the mapping keeps the file; the descriptor is not needed
        finally:
            os.close(fd)

    def bump(self) -> None:
        # Any value other than the last is a change; two writers at once leave one of theirs (or a mix): still new.
        self._map[len(_MAGIC):_SIZE] = os.urandom(8)

    def token(self) -> tuple[int, int]:
        return (1, _VALUE.unpack_from(self._map, len(_MAGIC))[0])


_MAGIC = b"CIELOGN1"
_SIZE = len(_MAGIC) + 8
_VALUE = struct.Struct("<Q")


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    """An exclusive flock on `fd` while a file is checked and converted (none where there is no flock)."""
    try:
        import fcntl  # POSIX only
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
