"""What the typed request bodies (`api/graph_protocol.py`, `control/arm_bodies.py`) share to word a refusal: the
property path of a pydantic error location, and the reason for pydantic's own error types."""

from __future__ import annotations

# Pydantic's error types, as the reason after a property's name.
TYPE_REASONS = {
    "missing": "it is required",
    "string_type": "a string is expected",
    "bool_type": "true or false is expected",
    "int_type": "an integer is expected",
    "list_type": "a list is expected",
    "model_type": "an object is expected",
    "model_attributes_type": "an object is expected",
    "dict_type": "an object is expected",
    "bytes_type": "a base64 string is expected",
    "string_too_short": "it must not be empty",
}


def property_path(loc: tuple[int | str, ...], *, indices: bool = True) -> str:
    """`('properties', 'permissions', 0, 'actions')` as `properties.permissions[0].actions` (with the indices) or
    `properties.permissions.actions`; pydantic's own steps (`function-after[...]`, `str`, `nullable[...]`) are left
    out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]" if indices else ""
        elif not (part.endswith("]") or part.startswith(("function-", "nullable"))):
            out += f".{part}" if out else part
    return out
