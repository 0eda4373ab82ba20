"""The CLI's files in CIELO_CONFIG_DIR (default ~/.cielo), like az's ~/.azure.

config.json   cloud endpoint, CA bundle, default output
profile.json  accounts and subscriptions (az's azureProfile.json)
tokens.json   refresh tokens, service-principal credentials and cached access tokens (mode 0600)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cielo.core.file_lock import exclusive_file_lock

DEFAULT_ENDPOINT = "https://127.0.0.1:8443"


def config_dir() -> Path:
    configured = os.environ.get("CIELO_CONFIG_DIR")
    return Path(configured) if configured else Path.home() / ".cielo"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any], mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


@dataclass
class CliConfig:
    endpoint_setting: str | None = None
    ca_bundle: str | None = None
    output: str = "json"

    @classmethod
    def load(cls) -> CliConfig:
        data = _read(config_dir() / "config.json")
        return cls(data.get("endpoint"), data.get("ca_bundle"), data.get("output", "json"))

    def save(self) -> None:
        _write(config_dir() / "config.json",
               {"endpoint": self.endpoint_setting, "ca_bundle": self.ca_bundle, "output": self.output})

    @property
    def endpoint(self) -> str:
        return (os.environ.get("CIELO_ENDPOINT") or self.endpoint_setting or DEFAULT_ENDPOINT).rstrip("/")


@dataclass
class Profile:
    """az's azureProfile.json: the subscriptions of signed-in accounts, one of them the default."""

    subscriptions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls) -> Profile:
        return cls(list(_read(config_dir() / "profile.json").get("subscriptions", [])))

    def save(self) -> None:
        _write(config_dir() / "profile.json", asdict(self))

    def default(self) -> dict[str, Any] | None:
        for sub in self.subscriptions:
            if sub.get("isDefault"):
                return sub
        return self.subscriptions[0] if self.subscriptions else None

    def replace_account(self, user_name: str, entries: list[dict[str, Any]]) -> None:
        kept = [s for s in self.subscriptions if s["user"]["name"] != user_name]
        for sub in kept:
            sub["isDefault"] = False
        for index, entry in enumerate(entries):
            entry["isDefault"] = index == 0
        self.subscriptions = entries + kept

    def set_default(self, id_or_name: str) -> dict[str, Any] | None:
        key = id_or_name.lower()
        match = next((s for s in self.subscriptions if key in (s["id"].lower(), s["name"].lower())), None)
        if match is not None:
            for sub in self.subscriptions:
                sub["isDefault"] = sub is match
        return match


@contextlib.contextmanager
def token_lock() -> Iterator[None]:
    """Hold an exclusive lock on the token cache across processes, for a read-refresh-write.

    Refresh tokens rotate on every use and a redeemed one presented again revokes the whole
    session, so two `az account get-access-token` at once (DefaultAzureCredential in threads) must
    neither redeem the same refresh token nor write back one that was already replaced."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    with exclusive_file_lock(directory / ".tokens.lock"):
        yield


class TokenCache:
    """Credentials and tokens; the file is created with mode 0600 and rewritten atomically."""

    def __init__(self) -> None:
        data = _read(config_dir() / "tokens.json")
        self.accounts: dict[str, dict[str, Any]] = data.get("accounts", {})
        self.access_tokens: dict[str, dict[str, Any]] = data.get("access_tokens", {})

    def save(self) -> None:
        _write(config_dir() / "tokens.json", {"accounts": self.accounts, "access_tokens": self.access_tokens})

    def forget(self, user_name: str | None = None) -> None:
        if user_name is None:
            self.accounts.clear()
            self.access_tokens.clear()
            return
        self.accounts.pop(user_name, None)
        for key in [k for k in self.access_tokens if k.startswith(f"{user_name}|")]:
            del self.access_tokens[key]
