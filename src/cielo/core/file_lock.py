"""An exclusive lock between processes: a flock on a lock file, released when its descriptor closes (and by the
kernel if the holder dies)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0600 if missing) for the `with` block. Where there is no flock
    (Windows) the block runs unlocked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        with locked(fd):
            yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def locked(fd: int) -> Iterator[None]:
    """Hold an exclusive flock on the open file `fd` for the `with` block (for a file the caller also reads and
    writes through `fd`). Where there is no flock (Windows) the block runs unlocked."""
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
