"""A cross-process change marker for in-memory caches.

Every directory write replaces the file `generation` in the data directory (a new inode each
time); readers compare `(st_ino, st_mtime_ns)` with what they saw last. One `stat` costs about a
microsecond, so caches can check it on every request and every worker sees a write at once.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class Generation:
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
