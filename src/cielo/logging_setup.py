"""Logging with a redaction filter: no secret, token, password or key reaches a log line."""

from __future__ import annotations

import json
import logging
import os
import re
import select
import threading
import time
import weakref
from typing import TextIO

_PATTERNS = [
    # JWTs and other bearer tokens
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "<redacted-jwt>"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1<redacted>"),
    # form or query parameters that carry secrets
    (
        re.compile(
            r"(?i)((?:client_secret|password|refresh_token|access_token|client_assertion|code|device_code|"
            r"code_verifier|api-key|secret|secretText)[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+"
        ),
        r"\1<redacted>",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts the message and each string argument. Arguments are kept when redacting them one by one gives
    the same text (uvicorn's access formatter reads them); otherwise the record is flattened to its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "access", None) is not None:
            # An access line (observability/http.py) is built from fields that carry no secret (the path without
            # its query string, a route template, ids); redacting it would cost ~0.1 ms a request.
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned == message:
            return True
        if isinstance(record.args, tuple):
            args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            try:
                if str(record.msg) % args == cleaned:
                    record.args = args
                    return True
            except (TypeError, ValueError):
                pass
        record.msg = cleaned
        record.args = None
        return True


_installed = False


def install_redaction() -> None:
    """Attach the filter to every handler of the root logger and of uvicorn's loggers."""
    global _installed
    flt = RedactingFilter()
    for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error", "cielo"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(flt)
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(flt)
    _installed = True


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an access-log record's fields (docs/monitoring.md).
    The line is redacted as a whole, whatever a field holds."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                                  "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        line = json.dumps(out, default=str)
        return line if isinstance(access, dict) else redact(line)  # access lines: see RedactingFilter


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PlainLines(logging.Formatter):
    """PLAIN_FORMAT, with the time text made once per second rather than once per line (an access line per
    request made `time.strftime` a measurable part of its cost)."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._text = second, time.strftime(self.default_time_format, self.converter(second))
        return f"{self._text},{int(record.msecs):03d}"


class BatchedLines(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr handler that writes its lines in batches rather than one `write` system call per line: the access
    log writes a line per request, and with a log file behind stderr a call per line cost the request path more
    than making the line. Lines below WARNING wait in memory until FLUSH_BYTES are pending, a line at WARNING or
    above arrives, or at most FLUSH_S (one daemon thread per process flushes every handler that often);
    `flush()` (at exit, and before the process forks) writes them all. Every write happens under the handler's
    lock. A process killed with SIGKILL loses at most FLUSH_S of info lines."""

    FLUSH_S = 0.2
    FLUSH_BYTES = 64 * 1024

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._size = 0
        _batched.add(self)

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held (Handler.handle)
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self.FLUSH_BYTES:
            self._write_pending()
        elif not _flusher["running"]:
            _start_flusher()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()

    def _write_pending(self) -> None:
        try:
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                self._size = 0
                self._write(text)
            if hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:  # a closed or broken stderr: logging must not take the request down
            self._pending.clear()
            self._size = 0

    def _write(self, text: str) -> None:
        """Whole lines, at most PIPE_BUF bytes per write where the stream has a byte buffer below it: the workers of
        a server share one stderr, and a pipe (docker, journald, `| tee`) keeps a write of up to PIPE_BUF bytes in
        one piece, where longer ones from two processes may interleave mid-line (a line per write never did)."""
        raw = getattr(self.stream, "buffer", None)
        if raw is None:
            self.stream.write(text)
            return
        self.stream.flush()  # whatever went through the text layer before goes first
        data = text.encode(getattr(self.stream, "encoding", None) or "utf-8",
                           getattr(self.stream, "errors", None) or "backslashreplace")
        for chunk in line_chunks(data, PIPE_BUF):
            raw.write(chunk)
            raw.flush()

    def _forget(self) -> None:
        self._pending.clear()  # the parent flushed them before the fork
        self._size = 0


PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)  # 4096 on Linux and macOS; POSIX's least is 512


def line_chunks(data: bytes, limit: int) -> list[bytes]:
    """`data` (lines ending in newlines) cut into runs of whole lines of at most `limit` bytes each; a line longer
    than `limit` is a run of its own."""
    chunks = []
    start = 0
    while start < len(data):
        end = start + limit
        if end >= len(data):
            chunks.append(data[start:])
            break
        cut = data.rfind(b"\n", start, end)
        if cut < 0:  # one line longer than the limit: all of it
            cut = data.find(b"\n", end)
            if cut < 0:
                cut = len(data) - 1
        chunks.append(data[start:cut + 1])
        start = cut + 1
    return chunks


_batched: weakref.WeakSet[BatchedLines] = weakref.WeakSet()
_flusher: dict[str, bool] = {"running": False}
_flusher_lock = [threading.Lock()]  # remade in a forked child (another thread may have held it at the fork)


def flush_batched() -> None:
    """Write every BatchedLines handler's pending lines (a worker calls it as it ends: forked workers leave by
    `os._exit`, which runs no atexit hook)."""
    for handler in list(_batched):
        handler.flush()


def _start_flusher() -> None:
    with _flusher_lock[0]:
        if not _flusher["running"]:
            _flusher["running"] = True
            threading.Thread(target=_flush_forever, name="cielo-log-flush", daemon=True).start()


def _flush_forever() -> None:
    pause = threading.Event()  # never set: its wait is the pause (a test may have replaced time.sleep)
    while True:
        pause.wait(BatchedLines.FLUSH_S)
        flush_batched()


def _forget_batched() -> None:  # in a forked child: no flusher thread yet, and nothing of the parent's pending
    _flusher["running"] = False
    _flusher_lock[0] = threading.Lock()
    for handler in list(_batched):
        handler._forget()


os.register_at_fork(before=flush_batched, after_in_child=_forget_batched)


def configure(level: str = "info", fmt: str = "plain") -> None:
    """`cielo up`'s logging for Cielo's own loggers (`cielo.*`: the access log, model loading, failures): one stderr
    handler on the root logger, plain text or JSON lines, redacted. uvicorn keeps its own handlers."""
    if fmt not in ("plain", "json"):
        raise ValueError(f"log format '{fmt}' is not plain or json")
    handler = BatchedLines()
    handler.setFormatter(JsonLines() if fmt == "json" else PlainLines())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    logging.getLogger("cielo").setLevel(level.upper())
    install_redaction()
