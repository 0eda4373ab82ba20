"""Hiding a secret given on the command line from the process list (`/proc/PID/cmdline`, `ps`).

Linux shows every local user a process's command line: the kernel reads it straight from the process's
own memory, the strings between `arg_start` and `arg_end` (fields 48 and 49 of `/proc/self/stat`) that
exec copied there. Python decodes those strings into `sys.argv` at start and never reads them again, so
they can be overwritten in place (what MySQL's client does with `-pPASSWORD`); `/proc/PID/cmdline` and
`ps` show the new bytes from then on. Processes forked afterwards (the server's workers) inherit the
overwritten copy.

Limits: until the overwrite, from exec to the first lines of `cielo up` (a fraction of a second),
the secret is visible; the area cannot shrink (that needs CAP_SYS_RESOURCE), so the secret's length
still shows (it is masked with as many `*`); nothing is hidden on systems without `/proc`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_MASK = b"*"


def hide_option_values(option: str) -> str | None:
    """Overwrite every value of `option VALUE` and `option=VALUE` in this process's command line (the memory
    `/proc/self/cmdline` reads) and in `sys.argv`/`sys.orig_argv`. Returns None when done (or when there was
    nothing to hide), else why not."""
    _hide_in_sys_argv(option)
    try:
        arg_start, arg_end = _arg_area()
        shown = Path("/proc/self/cmdline").read_bytes()
    except (OSError, ValueError, IndexError) as exc:
        return f"cannot read this process's command line area ({exc})"
    length = arg_end - arg_start
    if length <= 0 or len(shown) != length or not shown.endswith(b"\0"):
        return "the command line area is not the one exec wrote (changed by setproctitle?)"
    try:
        import ctypes
    except ImportError as exc:  # pragma: no cover - CPython without ctypes
        return f"ctypes is not available ({exc})"
    # The kernel gave these addresses for this very process and the bytes there are those it shows: a safe place
    # to read and write.
    if ctypes.string_at(arg_start, length) != shown:
        return "the command line area does not hold the command line"
    rewritten = _rewrite(shown, option.encode())
    if rewritten is None:
        return None
    ctypes.memmove(arg_start, rewritten, length)
    if _rewrite(Path("/proc/self/cmdline").read_bytes(), option.encode()) is not None:
        return "the kernel still shows the value"
    return None


def _arg_area() -> tuple[int, int]:
    """arg_start and arg_end from /proc/self/stat (proc(5) fields 48 and 49; the second field, the command
    name in parentheses, may itself hold spaces and parentheses)."""
    stat = Path("/proc/self/stat").read_bytes()
    fields = stat[stat.rindex(b")") + 2:].split()  # fields[0] is field 3
    return int(fields[48 - 3]), int(fields[49 - 3])


def _rewrite(area: bytes, option: bytes) -> bytes | None:
    """The NUL-separated arguments with each value of `option` masked by as many `*` (the same length: the area
    keeps its size and its arguments their number); None when there is nothing left to mask."""
    args = area.split(b"\0")
    changed = False
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args) - 1 and _unmasked(args[index + 1]):
            args[index + 1] = _MASK * len(args[index + 1])
            changed = True
        elif arg.startswith(option + b"=") and _unmasked(arg[len(option) + 1:]):
            args[index] = option + b"=" + _MASK * (len(arg) - len(option) - 1)
            changed = True
    return b"\0".join(args) if changed else None


def _unmasked(value: bytes) -> bool:
    return value.strip(_MASK) != b""


def _hide_in_sys_argv(option: str) -> None:
    for name in ("argv", "orig_argv"):
        values = getattr(sys, name, None)
        if not isinstance(values, list):
            continue
        encoded = [os.fsencode(value) for value in values] + [b""]
        rewritten = _rewrite(b"\0".join(encoded), option.encode())
        if rewritten is not None:
            setattr(sys, name, [os.fsdecode(value) for value in rewritten.split(b"\0")[:-1]])
