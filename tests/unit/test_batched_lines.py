"""logging_setup.BatchedLines: info lines are written in batches, nothing is lost or reordered, warnings go out at
once, and a forked child neither repeats the parent's pending lines nor loses its own."""

from __future__ import annotations

import io
import logging
import os
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cielo.logging_setup import BatchedLines, flush_batched, line_chunks


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


@given(st.lists(st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=300),
                max_size=60),
       st.sampled_from([16, 100, 4096]))
def test_line_chunks_are_whole_lines_within_the_limit(lines: list[str], limit: int) -> None:
    data = "".join(f"{line}\n" for line in lines).encode()
    chunks = line_chunks(data, limit)
    assert b"".join(chunks) == data
    for chunk in chunks:
        assert chunk.endswith(b"\n")
        assert len(chunk) <= limit or chunk.count(b"\n") == 1  # only a line longer than the limit goes alone


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_two_processes_batching_into_one_pipe_never_tear_a_line() -> None:
    """Workers share stderr; when it is a pipe, batches longer than PIPE_BUF from two processes could interleave
    mid-line. Each write is whole lines of at most PIPE_BUF bytes, which a pipe keeps in one piece."""
    read_end, write_end = os.pipe()
    lines_each, line = 3000, "x" * 180
    writers = []
    for name in ("a", "b"):
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                stream = io.TextIOWrapper(io.FileIO(write_end, "w", closefd=False), write_through=False)
                logger, handler = _logger(stream)  # type: ignore[arg-type]
                for n in range(lines_each):
                    logger.info("%s %d %s", name, n, line)
                handler.flush()
            finally:
                os._exit(0)
        writers.append(pid)
    os.close(write_end)
    received = b""
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.close(read_end)
    for pid in writers:
        os.waitpid(pid, 0)
    got = received.decode().splitlines()
    assert len(got) == 2 * lines_each
    assert all(re.fullmatch(rf"INFO [ab] \d+ {line}", entry) for entry in got)
