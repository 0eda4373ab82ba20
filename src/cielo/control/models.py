"""Moved to cielo/dataplane/catalogue.py (the data plane must not import control). Kept as a re-export for
the modules that still import it from here (control/resources.py, bootstrap.py); new code imports
cielo.dataplane.catalogue."""

from cielo.dataplane.catalogue import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_EMBEDDING_MODEL,
    E5_SMALL,
    MOCK,
    SMOLLM2,
    UPSTREAM_OPTIONS,
    ModelCatalogue,
    ModelEntry,
    parse_gguf,
    parse_upstream,
)

__all__ = ["DEFAULT_CHAT_MODEL", "DEFAULT_EMBEDDING_MODEL", "E5_SMALL", "MOCK", "SMOLLM2", "UPSTREAM_OPTIONS",
           "ModelCatalogue", "ModelEntry", "parse_gguf", "parse_upstream"]
