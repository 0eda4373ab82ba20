"""logging_setup.BatchedLines: info lines are written in batches, nothing is lost or reordered, warnings go out at
once, and a forked child neither repeats the parent's pending lines nor loses its own."""

from __future__ import annotations

import io
import logging
import os
import time

import pytest

from cielo.logging_setup import BatchedLines, flush_batched


def _logger(stream: io.StringIO) -> tuple[logging.Logger, BatchedLines]:
    handler = BatchedLines(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.batched.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, handler


def test_info_lines_wait_and_come_out_in_order() -> None:
    stream = io.StringIO()
    logger, handler = _logger(stream)
    for n in range(100):
        logger.info("line %d", n)
    assert stream.getvalue() == ""  # no write per line
    handler.flush()
    assert stream.getvalue().splitlines() == [f"INFO line {n}" for n in range(100)]


def test_a_warning_writes_what_waited_before_it_and_itself() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)
    logger.info("first")
    logger.warning("second")
    assert stream.getvalue().splitlines() == ["INFO first", "WARNING second"]


def test_a_full_batch_is_written_without_waiting() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)
    line = "x" * 1000
    for _ in range(BatchedLines.FLUSH_BYTES // 1000 + 1):
        logger.info(line)
    assert len(stream.getvalue()) >= BatchedLines.FLUSH_BYTES


def test_the_flusher_thread_writes_within_its_interval() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)
    logger.info("soon")
    deadline = time.monotonic() + 5 * BatchedLines.FLUSH_S + 2
    while "soon" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stream.getvalue() == "INFO soon\n"


def test_flush_batched_writes_every_handler() -> None:
    streams = [io.StringIO(), io.StringIO()]
    loggers = [_logger(s)[0] for s in streams]
    for logger in loggers:
        logger.info("pending")
    flush_batched()
    assert [s.getvalue() for s in streams] == ["INFO pending\n", "INFO pending\n"]


def test_a_broken_stream_does_not_raise_into_the_caller() -> None:
    stream = io.StringIO()
    logger, handler = _logger(stream)
    logger.info("lost")
    stream.close()
    handler.flush()  # a closed stderr: the lines are dropped, the request goes on
    logger.warning("also lost")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_writes_its_own_lines_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "log"
    with open(path, "w") as stream:
        logger, handler = _logger(stream)  # type: ignore[arg-type]
        logger.info("parent before fork")
        pid = os.fork()
        if pid == 0:  # the child: its line, written as it ends (as a worker does)
            try:
                logger.info("child")
                flush_batched()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        logger.info("parent after fork")
        handler.flush()
    lines = path.read_text().splitlines()
    assert sorted(lines) == ["INFO child", "INFO parent after fork", "INFO parent before fork"]
    assert lines[0] == "INFO parent before fork"  # written before the fork, so the child could not repeat it
