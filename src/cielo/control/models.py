"""The models this Cielo can serve: a deployment may only name one of them.

The data plane (next milestone) serves these through its backends; the catalogue is the contract
between the resource manager and the backends.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelEntry:
    format: str
    name: str
    version: str
    capabilities: tuple[tuple[str, str], ...]
    max_capacity: int = 1000


CATALOGUE: tuple[ModelEntry, ...] = (
    ModelEntry("HuggingFace", "SmolLM2-135M-Instruct", "1",
               (("chatCompletion", "true"), ("completion", "true"), ("maxContextToken", "8192"))),
)

DEFAULT_CHAT_MODEL = CATALOGUE[0]


def find_model(format_: str | None, name: str, version: str | None) -> ModelEntry | None:
    for entry in CATALOGUE:
        if entry.name.lower() != name.lower():
            continue
        if format_ and entry.format.lower() != format_.lower():
            continue
        if version and entry.version != version:
            continue
        return entry
    return None
