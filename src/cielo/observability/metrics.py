"""Prometheus metrics (prometheus-client), one `Metrics` per app.

`cielo up` runs several worker processes: it calls `prepare_multiprocess` before anything imports
prometheus_client, so every worker writes its samples to files under `DATA_DIR/metrics` (cleaned at each start)
and `/metrics`, in whichever worker answers, reports the sum over all of them (prometheus-client's multiprocess
mode). In-process (tests, one app) the metrics live in the app's own registry.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from a fast ARM read to a long generation.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def prepare_multiprocess(data_dir: Path) -> Path:
    """The directory the workers' samples go to, emptied (samples of an earlier run must not add up), and the
    environment prometheus-client reads; call before the workers fork."""
    directory = data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    # prometheus-client opens the sample files with the process umask (no mode of its own): a private umask from
    # here on, so they are 0600 like everything else in the data directory (tests/security/test_sec_host.py).
    os.umask(0o077)
    os.environ[MULTIPROC_ENV] = str(directory)
    import prometheus_client.values as values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # imported earlier?
    return directory


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("cielo_http_requests", "HTTP requests answered, by surface, route template, method "
                                "and status.", ["surface", "route", "method", "status"], registry=r)
        self.latency = Histogram("cielo_http_request_duration_seconds", "Time to answer a request (to its last "
                                 "byte), by surface and route template.", ["surface", "route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.tokens_issued = Counter("cielo_tokens_issued", "Tokens issued by the token endpoint, by grant type.",
                                     ["grant_type"], registry=r)
        self.signin_failures = Counter("cielo_signin_failures", "Failed sign-ins and token requests, by AADSTS code.",
                                       ["aadsts"], registry=r)
        self.lockouts = Counter("cielo_signin_lockouts", "Sign-ins refused by smart lockout or the address "
                                "throttle (AADSTS50053).", registry=r)
        self.dataplane_tokens = Counter("cielo_dataplane_tokens", "Data-plane tokens, by deployment and kind "
                                        "(prompt, completion).", ["deployment", "kind"], registry=r)
        self.ttft = Histogram("cielo_dataplane_time_to_first_token_seconds", "Streamed generations: time from the "
                              "request to the first token, by deployment.", ["deployment"], buckets=TTFT_BUCKETS,
                              registry=r)
        self.tokens_per_second = Histogram("cielo_dataplane_tokens_per_second", "Generated tokens per second of "
                                           "generation, by deployment.", ["deployment"], buckets=RATE_BUCKETS,
                                           registry=r)
        self.quota_rejections = Counter("cielo_quota_rejections", "Data-plane requests refused by a deployment's "
                                        "rate limits (429).", ["deployment"], registry=r)
        self.upstream_errors = Counter("cielo_upstream_errors", "Model backend failures answered to clients, by "
                                       "kind (the error code).", ["kind"], registry=r)
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._labelled: dict[tuple[int, tuple[str, ...]], Any] = {}

    def observe_request(self, surface: str, route: str, method: str, status: int, seconds: float) -> None:
        """The hot path's one call: the labelled children are looked up once per (route, method, status)."""
        key = (route, method, surface, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(surface, route, method, str(status)),
                        self.latency.labels(surface, route))
            if len(self._children) < 10_000:  # route templates keep this small; a bound all the same
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_generation(self, deployment: str, prompt: int, completion: int, seconds: float,
                           first_token_s: float | None) -> None:
        if prompt:
            self._child(self.dataplane_tokens, deployment, "prompt").inc(prompt)
        if completion:
            self._child(self.dataplane_tokens, deployment, "completion").inc(completion)
            if seconds > 0:
                self._child(self.tokens_per_second, deployment).observe(completion / seconds)
        if first_token_s is not None:
            self._child(self.ttft, deployment).observe(first_token_s)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: prometheus-client checks and converts the labels on every
        call. A series is made when first used, so it appears in /metrics once it has a value."""
        key = (id(metric), labels)  # the metrics are this object's own, alive as long as it is
        child = self._labelled.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._labelled) < 10_000:  # deployments make these; a bound all the same
                self._labelled[key] = child
        return child

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))


_current: Metrics | None = None


def process_metrics() -> Metrics:
    """The process's one set of metrics, as prometheus-client's own default registry is one per process: every app
    the process builds counts into it (a server builds one; tests build several, and a second app must not take
    the data plane's hooks, `current()`, away from the first)."""
    global _current
    if _current is None:
        _current = Metrics()
    return _current


def current() -> Metrics | None:
    """The metrics of the app this process serves (the data plane's hooks reach them here)."""
    return _current



def generation(deployment: str, usage: dict[str, Any] | None, seconds: float, *, first_token: bool = False) -> None:
    """The data plane's hook: a non-streamed answer's usage and duration, or a stream's first token (a stream's
    tokens are counted when it ends: `stream_finished`)."""
    metrics = _current
    if metrics is None:
        return
    if first_token:
        metrics.ttft.labels(deployment).observe(seconds)
        return
    if usage:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        metrics.observe_generation(deployment, prompt if isinstance(prompt, int) else 0,
                                   completion if isinstance(completion, int) else 0, seconds, None)


def stream_finished(deployment: str, usage: dict[str, Any] | None, completion: int, seconds: float,
                    prompt_estimate: Callable[[], int]) -> None:
    """The data plane's hook when a stream ends, however it ends: its prompt tokens (the backend's usage, else
    Cielo's estimate, as the usage chunk of `stream_options.include_usage` gives them), the completion tokens the
    quota is settled with, and tokens/s over the whole request, as for a non-streamed answer."""
    metrics = _current
    if metrics is None:
        return
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    metrics.observe_generation(deployment, prompt if isinstance(prompt, int) else prompt_estimate(), completion,
                               seconds, None)


def worker_exited(pid: int) -> None:
    """A worker process of `cielo up` ended (its replacement has another pid): in multiprocess mode its live gauges
    leave /metrics (prometheus-client's `mark_process_dead`); its counters and histograms stay in the sums."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
