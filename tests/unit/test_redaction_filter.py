"""logging_setup.RedactingFilter on records whose secret is split between the format and its arguments: the
record is flattened to its redacted text (arguments are kept only when redacting them one by one gives the same
text), so the secret never reaches a handler, whatever the handler does with msg and args."""

from __future__ import annotations

import logging

import pytest

from cielo.logging_setup import RedactingFilter


def _record(msg: str, args: tuple[object, ...]) -> logging.LogRecord:
    return logging.LogRecord("cielo.test", logging.INFO, __file__, 1, msg, args, None)


@pytest.mark.parametrize(("msg", "args", "shown", "kept_args"), [
    # the keyword in the format, the secret in the argument: only the whole text shows it is a secret
    ("Authorization: Bearer %s", ("abc.def",), "Authorization: Bearer <redacted>", False),
    ("client_secret=%s&x=1", ("s3cr3t",), "client_secret=<redacted>&x=1", False),
    # the secret whole in one argument: the argument is redacted and kept (uvicorn's access log reads args)
    ("%s %s", ("GET", "/x?code=abc123"), "GET /x?code=<redacted>", True),
    # nothing secret: untouched
    ("%s items", (3,), "3 items", True),
])
def test_split_secrets_are_flattened(msg: str, args: tuple[object, ...], shown: str, kept_args: bool) -> None:
    record = _record(msg, args)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == shown
    assert (record.args is not None) == kept_args
