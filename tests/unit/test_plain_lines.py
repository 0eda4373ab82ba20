"""logging_setup.PlainLines writes exactly what logging.Formatter(PLAIN_FORMAT) writes, its time text made once a
second."""

from __future__ import annotations

import logging

from cielo.logging_setup import PLAIN_FORMAT, PlainLines


def test_the_same_lines_as_the_standard_formatter() -> None:
    ours, theirs = PlainLines(), logging.Formatter(PLAIN_FORMAT)
    for created in (1_796_545_000.0, 1_796_545_000.999, 1_796_545_001.25, 1_796_545_000.5):
        record = logging.LogRecord("cielo.access", logging.INFO, __file__, 1, "%s %d", ("GET /x", 200), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == theirs.format(record)
