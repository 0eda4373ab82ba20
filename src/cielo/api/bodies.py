"""Moved to cielo/http/bodies.py (shared with web/, which must not import api/). Kept as a re-export
for the routers that still import it from here; new code imports cielo.http.bodies."""

from cielo.http.bodies import MAX_JSON_DEPTH, describe_size, lone_surrogate_in, nested_deeper_than, read_limited

__all__ = ["MAX_JSON_DEPTH", "describe_size", "lone_surrogate_in", "nested_deeper_than", "read_limited"]
