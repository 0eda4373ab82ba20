"""Template parameters (and outputs): their declared types and the checks ARM makes of a value."""

from __future__ import annotations

from typing import Any

from cielo.control.templates.expressions import TemplateError, type_name


def _keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in obj.items()}


PARAMETER_TYPES = {"string": "String", "securestring": "SecureString", "int": "Int", "bool": "Bool",
                   "object": "Object", "secureobject": "SecureObject", "array": "Array"}
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {"String": (str,), "SecureString": (str,), "Int": (int,),
                                              "Bool": (bool,), "Object": (dict,), "SecureObject": (dict,),
                                              "Array": (list,)}
PARAMETER_KEYS = {"type", "defaultvalue", "allowedvalues", "minvalue", "maxvalue", "minlength", "maxlength",
                  "metadata"}


def declared_type(name: str, declaration: Any) -> str:
    if not isinstance(declaration, dict):
        raise TemplateError(f"The template parameter '{name}' must be an object.", f"parameters.{name}")
    unknown = set(_keys(declaration)) - PARAMETER_KEYS
    if unknown:
        raise TemplateError(f"The template parameter '{name}' has properties this Cielo does not serve: "
                            f"{', '.join(sorted(unknown))}.", f"parameters.{name}")
    type_ = PARAMETER_TYPES.get(str(_keys(declaration).get("type", "")).lower())
    if type_ is None:
        raise TemplateError(f"The template parameter '{name}' has an invalid type "
                            f"'{_keys(declaration).get('type')}'; use one of {', '.join(PARAMETER_TYPES.values())}.",
                            f"parameters.{name}.type")
    return type_


def check_value(kind: str, name: str, type_: str, value: Any) -> None:
    """A parameter's or output's value must be of its declared type (ARM's InvalidTemplate otherwise)."""
    ok = isinstance(value, _PYTHON_TYPES[type_]) and not (type_ == "Int" and isinstance(value, bool))
    if not ok:
        raise TemplateError(f"The provided value for the template {kind} '{name}' is not valid. Expected a value of "
                            f"type '{type_}', but received a value of type '{type_name(value)}'.")


def check_parameter(name: str, type_: str, declaration: dict[str, Any], value: Any) -> None:
    """A parameter's value against its declaration: type, allowedValues, min/max value and length."""
    check_value("parameter", name, type_, value)
    d = _keys(declaration)
    allowed = d.get("allowedvalues")
    if isinstance(allowed, list) and value not in allowed and not (
            isinstance(value, list) and all(v in allowed for v in value)):
        shown = "" if type_.startswith("Secure") else f" '{value}'"
        raise TemplateError(f"The provided value{shown} for the template parameter '{name}' is not valid. The "
                            f"value must be one of: {', '.join(str(a) for a in allowed)}.")
    if type_ == "Int":
        low, high = d.get("minvalue"), d.get("maxvalue")
        if (low is not None and value < low) or (high is not None and value > high):
            raise TemplateError(f"The provided value for the template parameter '{name}' is not valid: it must "
                                f"be between {d.get('minvalue', '-inf')} and {d.get('maxvalue', 'inf')}.")
    elif type_ in ("String", "SecureString", "Array") and not (
            d.get("minlength", 0) <= len(value) <= d.get("maxlength", len(value))):
        raise TemplateError(f"The provided value for the template parameter '{name}' is not valid: its length "
                            f"must be between {d.get('minlength', 0)} and {d.get('maxlength', 'any')}.")
