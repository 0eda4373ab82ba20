"""Logging with a redaction filter: no secret, token, password or key reaches a log line."""

from __future__ import annotations

import json
import logging
import re
import time

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


def configure(level: str = "info", fmt: str = "plain") -> None:
    """`cielo up`'s logging for Cielo's own loggers (`cielo.*`: the access log, model loading, failures): one stderr
    handler on the root logger, plain text or JSON lines, redacted. uvicorn keeps its own handlers."""
    if fmt not in ("plain", "json"):
        raise ValueError(f"log format '{fmt}' is not plain or json")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if fmt == "json" else PlainLines())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    logging.getLogger("cielo").setLevel(level.upper())
    install_redaction()
