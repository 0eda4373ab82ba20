"""The decisions of `cielo up --workers N`'s supervisor (api/server.py): which dead worker it replaces, and how it
names the way one ended. The processes themselves: tests/e2e/test_worker_restart.py."""

from __future__ import annotations

import signal

from cielo.api.server import RESTART_LIMIT, RESTART_WINDOW_S, RestartBudget, describe_exit


def test_workers_dying_as_they_start_are_replaced_five_times_then_no_more() -> None:
    budget = RestartBudget()
    assert (budget.limit, budget.window_s) == (RESTART_LIMIT, RESTART_WINDOW_S) == (5, 60.0)
    assert [budget.allow(100.0 + i * 0.5) for i in range(7)] == [True] * 5 + [False, False]


def test_restarts_older_than_the_window_no_longer_count() -> None:
    budget = RestartBudget(limit=5, window_s=60.0)
    assert all(budget.allow(t) for t in (0.0, 10.0, 20.0, 30.0, 40.0))
    assert not budget.allow(59.9)  # five within the last 60 s
    assert budget.allow(60.0)  # the one at 0 s is 60 s old: four remain within the window
    assert not budget.allow(65.0)
    assert budget.allow(70.0)


def test_a_refused_restart_is_not_counted() -> None:
    budget = RestartBudget(limit=2, window_s=10.0)
    assert budget.allow(0.0) and budget.allow(1.0)
    assert not budget.allow(2.0) and not budget.allow(9.0)
    assert budget.allow(10.0)  # only the allowed ones (0 s, 1 s) counted: one left the window


def test_a_worker_now_and_then_is_always_replaced() -> None:
    budget = RestartBudget()
    assert all(budget.allow(t * 13.0) for t in range(100))  # one death every 13 s: never 6 within 60 s


def test_exits_in_words() -> None:
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "signal SIGSEGV"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(None) == "an unknown status"
