"""The pure template functions (strings, arrays, objects, logic, conversion, ids): what ARM's template function
reference (learn.microsoft.com/azure/azure-resource-manager/templates/template-functions) defines, for the subset
real templates call. Functions that read the deployment (parameters, reference, resourceGroup…) are added by
`cielo.control.templates.template`."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cielo.control.templates.expressions import Function, LazyFunction, Node, TemplateError, type_name

# guid() and uniqueString() are deterministic in their arguments, as in ARM; the hashes differ from Azure's.
_GUID_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def _strings(name: str, args: tuple[Any, ...]) -> list[str]:
    for a in args:
        if not isinstance(a, str):
            raise TemplateError(f"The template function '{name}' expects strings, not '{type_name(a)}'.")
    return list(args)


def guid(*args: Any) -> str:
    if not args:
        raise TemplateError("The template function 'guid' needs at least one argument.")
    return str(uuid.uuid5(_GUID_NAMESPACE, "-".join(_strings("guid", args))))


def unique_string(*args: Any) -> str:
    if not args:
        raise TemplateError("The template function 'uniqueString' needs at least one argument.")
    digest = int.from_bytes(hashlib.sha256("-".join(_strings("uniqueString", args)).encode()).digest()[:8], "big")
    return "".join(_BASE32[(digest >> (5 * i)) & 31] for i in range(13))


def concat(*args: Any) -> Any:
    if args and all(isinstance(a, list) for a in args):
        return [x for a in args for x in a]
    if any(isinstance(a, (list, dict)) for a in args):
        raise TemplateError("The template function 'concat' expects all strings or all arrays.")
    return "".join(_text(a) for a in args)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def format_(template: str, *args: Any) -> str:
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "{" and template.startswith("{{", i):
            out.append("{")
            i += 2
        elif c == "}" and template.startswith("}}", i):
            out.append("}")
            i += 2
        elif c == "{":
            end = template.index("}", i)
            spec = template[i + 1:end].split(":")[0]
            out.append(_text(args[int(spec)]))
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _equals(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return str(item).lower() in container.lower() if isinstance(item, str) else str(item) in container
    if isinstance(container, dict):
        return any(k.lower() == str(item).lower() for k in container)
    if isinstance(container, list):
        return any(_equals(x, item) for x in container)
    raise TemplateError(f"The template function 'contains' cannot search a '{type_name(container)}'.")


def _length(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise TemplateError(f"The template function 'length' expects a string, array or object, not "
                        f"'{type_name(value)}'.")


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


def _union(*args: Any) -> Any:
    if all(isinstance(a, dict) for a in args):
        out: dict[str, Any] = {}
        for a in args:
            out.update(a)
        return out
    if all(isinstance(a, list) for a in args):
        items: list[Any] = []
        for a in args:
            items += [x for x in a if x not in items]
        return items
    raise TemplateError("The template function 'union' expects all objects or all arrays.")


def _create_object(*args: Any) -> dict[str, Any]:
    if len(args) % 2:
        raise TemplateError("The template function 'createObject' expects key/value pairs.")
    return {str(args[i]): args[i + 1] for i in range(0, len(args), 2)}


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TemplateError("The template function 'int' cannot convert a Boolean.")
    return int(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise TemplateError(f"The template function 'bool' cannot convert '{value}'.")
        return value.lower() == "true"
    return bool(value)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else _text(value)


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise TemplateError(f"The template function 'json' got invalid JSON: {exc}") from exc


def _first(value: Any) -> Any:
    return value[0] if value else None


def _last(value: Any) -> Any:
    return value[-1] if value else None


def _take(value: Any, count: int) -> Any:
    return value[:max(count, 0)]


def _skip(value: Any, count: int) -> Any:
    return value[max(count, 0):]


def _substring(text: str, start: int, length: int | None = None) -> str:
    if start < 0 or start > len(text) or (length is not None and (length < 0 or start + length > len(text))):
        raise TemplateError("The index and length parameters of 'substring' must refer to a location within the "
                            "string.")
    return text[start:] if length is None else text[start:start + length]


def _split(text: str, delimiter: Any) -> list[str]:
    delimiters = delimiter if isinstance(delimiter, list) else [delimiter]
    parts = [text]
    for d in delimiters:
        parts = [p for part in parts for p in part.split(d)]
    return parts


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _b64_to_string(text: str) -> str:
    return base64.b64decode(text).decode()


def _range(start: int, count: int) -> list[int]:
    if count < 0 or count > 10000:
        raise TemplateError("The count of 'range' must be between 0 and 10000.")
    return list(range(start, start + count))


def _coalesce(*args: Any) -> Any:
    return next((a for a in args if a is not None), None)


PURE: dict[str, Function] = {
    "guid": guid, "uniquestring": unique_string, "concat": concat, "format": format_,
    "equals": _equals, "not": lambda v: not _bool(v), "contains": _contains, "length": _length, "empty": _empty,
    "tolower": lambda s: s.lower(), "toupper": lambda s: s.upper(), "trim": lambda s: s.strip(),
    "substring": _substring, "replace": lambda s, old, new: s.replace(old, new), "split": _split,
    "startswith": lambda s, p: s.lower().startswith(p.lower()), "endswith": lambda s, p: s.lower().endswith(p.lower()),
    "indexof": lambda s, p: s.lower().find(p.lower()), "padleft": lambda s, n, c=" ": _string(s).rjust(n, c),
    "union": _union, "createarray": lambda *a: list(a), "createobject": _create_object, "array": lambda v: [v],
    "json": _json, "string": _string, "int": _int, "bool": _bool, "first": _first, "last": _last,
    "take": _take, "skip": _skip, "range": _range, "coalesce": _coalesce,
    "min": lambda *a: min(a[0] if len(a) == 1 and isinstance(a[0], list) else a),
    "max": lambda *a: max(a[0] if len(a) == 1 and isinstance(a[0], list) else a),
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: int(a / b), "mod": lambda a, b: a - b * int(a / b),
    "less": lambda a, b: a < b, "lessorequals": lambda a, b: a <= b, "greater": lambda a, b: a > b,
    "greaterorequals": lambda a, b: a >= b,
    "base64": _b64, "base64tostring": _b64_to_string, "base64tojson": lambda t: _json(_b64_to_string(t)),
    "true": lambda: True, "false": lambda: False, "null": lambda: None,
}


async def _if(evaluate: Callable[[Node], Awaitable[Any]], args: tuple[Node, ...]) -> Any:
    if len(args) != 3:
        raise TemplateError("The template function 'if' expects 3 arguments.")
    return await evaluate(args[1] if _bool(await evaluate(args[0])) else args[2])


async def _and(evaluate: Callable[[Node], Awaitable[Any]], args: tuple[Node, ...]) -> Any:
    for a in args:
        if not _bool(await evaluate(a)):
            return False
    return True


async def _or(evaluate: Callable[[Node], Awaitable[Any]], args: tuple[Node, ...]) -> Any:
    for a in args:
        if _bool(await evaluate(a)):
            return True
    return False


LAZY: dict[str, LazyFunction] = {"if": _if, "and": _and, "or": _or}


# ----------------------------------------------------------------------------- resource ids
def _type_parts(type_: str) -> tuple[str, list[str]]:
    parts = type_.split("/")
    if len(parts) < 2 or not all(parts):
        raise TemplateError(f"The resource type '{type_}' is not valid: it must be 'Namespace/type[/child…]'.")
    return parts[0], parts[1:]


def typed_path(type_: str, names: list[str]) -> str:
    """`providers/{ns}/{t1}/{n1}/…` for a type and its names (one name per type segment, or one 'a/b' name)."""
    namespace, types = _type_parts(type_)
    if len(names) == 1 and len(types) > 1:
        names = names[0].split("/")
    if len(names) != len(types):
        raise TemplateError(f"The resource type '{type_}' needs {len(types)} name segment(s), got "
                            f"{len(names)}: '{'/'.join(names)}'.")
    if type_.lower() == RESOURCE_GROUP_TYPE.lower():  # a group's id has no `providers` segment
        return f"resourceGroups/{names[0]}"
    return f"providers/{namespace}/" + "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))


RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"


def resource_id(subscription: str, group: str | None, *args: Any) -> str:
    """resourceId([subscriptionId], [resourceGroupName], resourceType, name1, …). Without a group (a deployment at
    subscription scope that names none), the id is the subscription's, as subscriptionResourceId's."""
    values = _strings("resourceId", args)
    at = next((i for i, a in enumerate(values) if "/" in a), None)
    if at is None or at > 2:
        raise TemplateError("The template function 'resourceId' expects a resource type such as "
                            "'Microsoft.Namespace/type'.")
    lead = values[:at]
    if len(lead) == 2:
        subscription, group = lead
    elif len(lead) == 1:
        group = lead[0]
    if group is None:
        return f"/subscriptions/{subscription}/" + typed_path(values[at], values[at + 1:])
    return f"/subscriptions/{subscription}/resourceGroups/{group}/" + typed_path(values[at], values[at + 1:])


def subscription_resource_id(subscription: str, *args: Any) -> str:
    values = _strings("subscriptionResourceId", args)
    if values and "/" not in values[0] and len(values) > 1 and "/" in values[1]:
        subscription, values = values[0], values[1:]
    if not values:
        raise TemplateError("The template function 'subscriptionResourceId' expects a resource type.")
    return f"/subscriptions/{subscription}/" + typed_path(values[0], values[1:])


def extension_resource_id(scope: str, type_: str, *names: Any) -> str:
    return scope.rstrip("/") + "/" + typed_path(type_, _strings("extensionResourceId", names))


def tenant_resource_id(type_: str, *names: Any) -> str:
    return "/" + typed_path(type_, _strings("tenantResourceId", names))
