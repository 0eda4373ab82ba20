"""Logging with a redaction filter: no secret, token, password or key reaches a log line."""

from __future__ import annotations

import logging
import re

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
