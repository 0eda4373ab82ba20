"""What `/readyz` checks (docs/monitoring.md): the database answers, a signing key is loaded, and every local model
file a deployment may name is installed. Each check returns None when fine, else the problem in words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cielo.control.activity import ActivityLog
from cielo.dataplane.catalogue import ModelCatalogue
from cielo.identity.keys import KeyRing


def readiness_checks(activity: ActivityLog, keys: KeyRing,
                     catalogue: ModelCatalogue) -> dict[str, Callable[[], str | None]]:
    def database() -> str | None:
        activity.ping()
        return None

    def signing_keys() -> str | None:
        keys.signing_key()
        return None

    def models() -> str | None:
        missing = [entry.name for entry in catalogue.entries if entry.backend == "llamacpp"
                   and not _model_file(entry).exists()]
        return f"model files not installed: {', '.join(missing)}" if missing else None

    return {"database": database, "signing_keys": signing_keys, "models": models}


def _model_file(entry: Any) -> Path:
    if entry.target:
        return Path(entry.target)
    from cielo.backends.llamacpp import smollm2_path

    return smollm2_path() or Path("/nonexistent/smollm2.gguf")
