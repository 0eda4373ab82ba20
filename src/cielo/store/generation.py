"""Change markers for in-memory caches: a cache compares a marker's `token()` with what it saw last and reloads
when it differs; a writer calls `bump()` after changing what the cache holds.

Two implementations of `ChangeMarker`:

- `Generation`, the embedded default: a file in the data directory that every write replaces (a new inode each
  time); readers compare `(st_ino, st_mtime_ns)`. One `stat` costs about a microsecond, so caches check it on
  every request and every worker of one machine sees a write at once.
- `cielo.shared.feed.RedisGeneration` (`--redis-url`), for replicas on several machines: a counter in Redis,
  pushed to every replica over pub/sub (docs/deployment.md, "Redis and replicas").
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol


class ChangeMarker(Protocol):
    def bump(self) -> None:
        """Tell every process (and replica) that what the marker covers has changed."""

    def token(self) -> tuple[int, int]:
        """A value that differs from every earlier one after a `bump` anywhere."""


class Generation:
    """The file implementation of `ChangeMarker`, shared by the workers of one machine."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        if not path.exists():
            self.bump()

    def bump(self) -> None:
        with self._lock:
            tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(str(os.urandom(8).hex()))
            os.replace(tmp, self._path)

    def token(self) -> tuple[int, int]:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)
