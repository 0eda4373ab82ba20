"""One template deployment, evaluated: parameters checked against their declarations, variables, resources
expanded (copy loops, conditions, nested children) into a plan in dependsOn order, and outputs.

Pure of I/O: what a deployment reads from or writes to the resource manager goes through the `Client` it is given
(the API runs every call through the same route table as a direct request, as the deploying caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cielo.control.templates import functions as fn
from cielo.control.templates.expressions import (
    Evaluator,
    Function,
    TemplateError,
    calls,
    is_expression,
    parse,
)
from cielo.control.templates.parameters import PARAMETER_TYPES, check_parameter, check_value, declared_type

TEMPLATE_KEYS = {"$schema", "contentversion", "metadata", "parameters", "variables", "resources", "outputs",
                 "functions"}
RESOURCE_KEYS = {"type", "apiversion", "name", "location", "properties", "identity", "sku", "kind", "tags",
                 "dependson", "condition", "copy", "resources", "comments", "scope", "resourcegroup", "subscriptionid"}
# The keys only a nested deployment (`Microsoft.Resources/deployments` as a template resource) may have: where it runs.
NESTED_KEYS = {"resourcegroup", "subscriptionid"}
DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"
# A nested deployment's properties this Cielo serves (templateLink, parametersLink… are refused by name).
NESTED_PROPERTIES = {"template", "parameters", "mode", "expressionevaluationoptions"}
# What is sent to the resource's own PUT: the body keys a resource of ARM has.
BODY_KEYS = ("location", "properties", "identity", "sku", "kind", "tags")
MAX_RESOURCES = 800
_SCHEMA_SUFFIX = "deploymenttemplate.json#"
_OTHER_SCOPES = ("/subscriptiondeploymenttemplate", "/tenantdeploymenttemplate", "/managementgroupdeploymenttemplate")


class ResourceFailure(Exception):
    """What a resource's own operation answered: its ARM error code and message (and HTTP status)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Client(Protocol):
    """The resource manager as the deploying caller sees it (each call authorized as that caller)."""

    async def get(self, resource_id: str, api_version: str) -> dict[str, Any]: ...

    async def post(self, path: str, api_version: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Target:
    """Where a deployment runs: the subscription, the resource group (None: the subscription itself) and the
    deployment's name; `location` is a subscription deployment's own (where ARM keeps its record)."""

    subscription_id: str
    subscription_name: str
    tenant_id: str
    group_name: str | None
    group_location: str
    group_tags: dict[str, str]
    deployment_name: str
    location: str | None = None

    @property
    def scope_id(self) -> str:
        sub = f"/subscriptions/{self.subscription_id}"
        return sub if self.group_name is None else f"{sub}/resourceGroups/{self.group_name}"


@dataclass
class Planned:
    """One resource instance of the template, with its id resolved; its body is evaluated when it runs."""

    id: str
    type: str
    name: str
    api_version: str
    raw: dict[str, Any]
    copy_index: int | None
    copy_name: str | None
    depends_on: list[str] = field(default_factory=list)
    # What its body's reference()/listKeys() name: a dependency when it is a resource of this template.
    implicit: list[str] = field(default_factory=list)


def _keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in obj.items()}


class Deployment:
    """Evaluates one template with its parameters for one target."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any], target: Target, client: Client,
                 mode: str = "Incremental") -> None:
        self.template, self.given, self.target, self.client, self.mode = template, parameters, target, client, mode
        self.declarations: dict[str, dict[str, Any]] = {}
        self.types: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._variables: dict[str, Any] = {}
        self._resolving: set[str] = set()
        self.plan: list[Planned] = []
        self.skipped: set[str] = set()

    # ------------------------------------------------------------------------- functions
    def functions(self, copy: tuple[str | None, int] | None = None,
                  named: Mapping[str, int] | None = None) -> dict[str, Function]:
        t = self.target
        group_id = t.scope_id

        def copy_index(*args: Any) -> int:
            offset = next((a for a in args if isinstance(a, int)), 0)
            loop = next((a for a in args if isinstance(a, str)), None)
            if loop is not None and named and loop.lower() in named:
                return named[loop.lower()] + int(offset)
            if copy is None:
                raise TemplateError("The template function 'copyIndex' is not expected at this location.")
            if loop is not None and (copy[0] or "").lower() != loop.lower():
                raise TemplateError(f"The copy loop '{loop}' is not the loop of this element.")
            return copy[1] + int(offset)

        return {
            **fn.PURE,
            "parameters": self.parameter, "variables": self.variable, "copyindex": copy_index,
            "resourcegroup": self._resource_group(group_id),
            "subscription": lambda: {"id": f"/subscriptions/{t.subscription_id}", "subscriptionId": t.subscription_id,
                                     "tenantId": t.tenant_id, "displayName": t.subscription_name},
            "tenant": lambda: {"tenantId": t.tenant_id, "countryCode": "US", "displayName": t.tenant_id},
            "deployment": lambda: {"name": t.deployment_name, **({"location": t.location} if t.location else {}),
                                   "properties": {"template": {"contentVersion": self.template.get("contentVersion")},
                                                  "mode": self.mode, "provisioningState": "Accepted"}},
            "resourceid": lambda *a: fn.resource_id(t.subscription_id, t.group_name, *a),
            "subscriptionresourceid": lambda *a: fn.subscription_resource_id(t.subscription_id, *a),
            "extensionresourceid": fn.extension_resource_id, "tenantresourceid": fn.tenant_resource_id,
            "reference": self.reference, "listkeys": self.list_keys,
        }

    def _resource_group(self, group_id: str) -> Function:
        t = self.target

        def resource_group() -> dict[str, Any]:
            if t.group_name is None:
                raise TemplateError("The template function 'resourceGroup' is not expected at this location: a "
                                    "subscription deployment has no resource group (deploy into one with a nested "
                                    "deployment whose 'resourceGroup' is set).")
            return {"id": group_id, "name": t.group_name, "type": "Microsoft.Resources/resourceGroups",
                    "location": t.group_location, "tags": t.group_tags,
                    "properties": {"provisioningState": "Succeeded"}}

        return resource_group

    def evaluator(self, copy: tuple[str | None, int] | None = None,
                  named: Mapping[str, int] | None = None) -> Evaluator:
        return Evaluator(self.functions(copy, named), fn.LAZY)

    async def resolve(self, raw: Any, where: str, copy: tuple[str | None, int] | None = None,
                      named: Mapping[str, int] | None = None) -> Any:
        """A value with its expressions evaluated and its property loops (`"copy": [{name, count, input}]` in an
        object) expanded; `copyIndex('name')` inside a loop's input is that loop's index."""
        named = named or {}
        if isinstance(raw, list):
            return [await self.resolve(v, f"{where}[{i}]", copy, named) for i, v in enumerate(raw)]
        if not isinstance(raw, dict):
            return await self.evaluator(copy, named).value(raw, where)
        loops = raw.get("copy") if isinstance(raw.get("copy"), list) else None
        out = {k: await self.resolve(v, f"{where}.{k}" if where else k, copy, named) for k, v in raw.items()
               if not (loops is not None and k == "copy")}
        for j, loop in enumerate(loops or []):
            at = f"{where}.copy[{j}]"
            spec = _keys(loop) if isinstance(loop, dict) else {}
            name = spec.get("name")
            count = await self.evaluator(copy, named).value(spec.get("count"), f"{at}.count")
            if not isinstance(name, str) or not isinstance(count, int) or not 0 <= count <= MAX_RESOURCES \
                    or "input" not in spec:
                raise TemplateError(f"A property copy loop needs a 'name', a 'count' between 0 and {MAX_RESOURCES} "
                                    "and an 'input'.", at)
            out[name] = [await self.resolve(spec["input"], f"{at}.input", copy, {**named, name.lower(): i})
                         for i in range(count)]
        return out

    async def parameter(self, name: str) -> Any:
        key = name.lower()
        if key not in self.declarations:
            raise TemplateError(f"The template parameter '{name}' is not found.")
        if key not in self.values:
            if key in self._resolving:
                raise TemplateError(f"The template parameter '{name}' refers to itself.")
            self._resolving.add(key)
            declaration = _keys(self.declarations[key])
            value = await self.evaluator().value(declaration["defaultvalue"], f"parameters.{name}.defaultValue")
            self._resolving.discard(key)
            check_parameter(name, self.types[name.lower()], self.declarations[name.lower()], value)
            self.values[key] = value
        return self.values[key]

    async def variable(self, name: str) -> Any:
        raw_variables = self.template.get("variables") or {}
        variables = _keys({k: v for k, v in raw_variables.items() if k != "copy"})
        for loop in raw_variables.get("copy") or []:  # a variable loop: `"copy": [{name, count, input}]`
            if isinstance(loop, dict) and isinstance(loop.get("name"), str):
                variables[loop["name"].lower()] = {"copy": [loop]}
        key = name.lower()
        if key not in variables:
            raise TemplateError(f"The template variable '{name}' is not found.")
        if key not in self._variables:
            if f"variable:{key}" in self._resolving:
                raise TemplateError(f"The template variable '{name}' refers to itself.")
            self._resolving.add(f"variable:{key}")
            value = await self.resolve(variables[key], f"variables.{name}")
            if key not in _keys({k: v for k, v in raw_variables.items() if k != "copy"}):
                value = next(iter(value.values()))  # the loop's own name holds its array
            self._variables[key] = value
            self._resolving.discard(f"variable:{key}")
        return self._variables[key]

    def _resolve_target(self, name_or_id: str) -> Planned | None:
        for p in self.plan:
            if p.id.lower() == name_or_id.lower() or (not name_or_id.startswith("/") and
                                                      p.name.lower() == name_or_id.lower()):
                return p
        return None

    async def reference(self, name_or_id: str, api_version: str | None = None, full: str | None = None) -> Any:
        planned = self._resolve_target(name_or_id)
        if planned is None and not name_or_id.startswith("/"):
            raise TemplateError(f"The resource '{name_or_id}' is not defined in the template.")
        rid = planned.id if planned else name_or_id
        version = api_version or (planned.api_version if planned else None)
        if version is None:
            raise TemplateError(f"The template function 'reference' needs an api-version for '{rid}'.")
        try:
            body = await self.client.get(rid, version)
        except ResourceFailure as exc:
            raise TemplateError(f"The template function 'reference' could not read '{rid}': {exc.code}: "
                                f"{exc.message}") from exc
        if full is not None and full.lower() == "full":
            return body
        return body.get("properties", {})

    async def list_keys(self, resource_id: str, api_version: str) -> Any:
        try:
            return await self.client.post(resource_id.rstrip("/") + "/listKeys", api_version)
        except ResourceFailure as exc:
            raise TemplateError(f"The template function 'listKeys' failed for '{resource_id}': {exc.code}: "
                                f"{exc.message}") from exc

    # ------------------------------------------------------------------------- validation and planning
    async def prepare(self) -> list[Planned]:
        """Checks the template and its parameters, then expands its resources: InvalidTemplate on any fault."""
        template = self.template
        if not isinstance(template, dict):
            raise TemplateError("The template must be a JSON object.")
        unknown = {k for k in template if k.lower() not in TEMPLATE_KEYS}
        if unknown:
            raise TemplateError(f"The template has properties this Cielo does not serve: {', '.join(sorted(unknown))} "
                                "(user-defined functions, languageVersion 2.0 and apiProfile are not served).")
        if _keys(template).get("functions"):
            raise TemplateError("User-defined template functions are not served by this Cielo.", "functions")
        schema = str(_keys(template).get("$schema", ""))
        scope = next((s for s in _OTHER_SCOPES if s in schema.lower()), "/deploymenttemplate")
        # At subscription scope ARM also takes the resource-group schema (Terraform's and Pulumi's examples use it).
        wanted = ("/deploymenttemplate",) if self.target.group_name is not None else (
            "/subscriptiondeploymenttemplate", "/deploymenttemplate")
        if not schema.lower().endswith(_SCHEMA_SUFFIX) or scope not in wanted:
            kind, file = (("resource group", "2019-04-01/deploymentTemplate.json#") if len(wanted) == 1
                          else ("subscription", "2018-05-01/subscriptionDeploymentTemplate.json#"))
            raise TemplateError(f"The template '$schema' '{schema}' is not a {kind} deployment template "
                                f"(https://schema.management.azure.com/schemas/{file}).", "$schema")
        if not isinstance(_keys(template).get("contentversion"), str):
            raise TemplateError("The template 'contentVersion' is required.", "contentVersion")
        for name, declaration in (template.get("parameters") or {}).items():
            self.declarations[name.lower()] = declaration
            self.types[name.lower()] = declared_type(name, declaration)
        for name, wrapper in self.given.items():
            if name.lower() not in self.declarations:
                raise TemplateError(f"The template parameters '{name}' in the parameters file are not valid; they "
                                    "are not present in the original template and can therefore not be provided at "
                                    "deployment time.")
            if not isinstance(wrapper, dict) or set(wrapper) - {"value"}:
                raise TemplateError(f"The parameter '{name}' must be given as {{\"value\": …}} (Key Vault references "
                                    "are not served by this Cielo).")
            self.values[name.lower()] = wrapper.get("value")
            check_parameter(name, self.types[name.lower()], self.declarations[name.lower()], wrapper.get("value"))
        for name, declaration in (template.get("parameters") or {}).items():
            if name.lower() not in self.values and "defaultvalue" not in _keys(declaration):
                raise TemplateError(f"The value for the template parameter '{name}' is not provided.")
            await self.parameter(name)
        resources = template.get("resources")
        if not isinstance(resources, list):
            raise TemplateError("The template 'resources' must be an array.", "resources")
        for i, raw in enumerate(resources):
            await self._expand(raw, f"resources[{i}]", None)
        if len(self.plan) > MAX_RESOURCES:
            raise TemplateError(f"The template has {len(self.plan)} resources; the limit is {MAX_RESOURCES}.")
        await self._resolve_dependencies()
        return self.plan

    async def _expand(self, raw: Any, where: str, parent: Planned | None) -> None:
        if not isinstance(raw, dict):
            raise TemplateError("A template resource must be an object.", where)
        unknown = {k for k in raw if k.lower() not in RESOURCE_KEYS}
        if unknown:
            raise TemplateError(f"The template resource has properties this Cielo does not serve: "
                                f"{', '.join(sorted(unknown))}.", where)
        r = _keys(raw)
        for key in ("type", "apiversion", "name"):
            if not isinstance(r.get(key), str):
                raise TemplateError(f"The template resource property '{key}' is required.", where)
        nested = r["type"].lower() == DEPLOYMENT_TYPE.lower()
        if not nested and NESTED_KEYS & set(r):
            raise TemplateError("Only a nested deployment (Microsoft.Resources/deployments) may name a "
                                "'resourceGroup' or 'subscriptionId'.", where)
        if nested:
            _check_nested(r, where)
        copy = r.get("copy")
        instances: list[tuple[str | None, int] | None] = [None]
        if copy is not None:
            if parent is not None:
                raise TemplateError("Copy loops on nested child resources are not served by this Cielo.", where)
            c = _keys(copy) if isinstance(copy, dict) else {}
            count = await self.evaluator().value(c.get("count"), f"{where}.copy.count")
            if not isinstance(c.get("name"), str) or not isinstance(count, int) or count < 0 or count > MAX_RESOURCES:
                raise TemplateError(f"The copy loop needs a 'name' and a 'count' between 0 and {MAX_RESOURCES}.",
                                    f"{where}.copy")
            if str(c.get("mode", "parallel")).lower() not in ("serial", "parallel"):
                raise TemplateError("The copy 'mode' must be 'serial' or 'parallel'.", f"{where}.copy.mode")
            instances = [(c["name"], i) for i in range(count)]
        for copy_at in instances:
            ev = self.evaluator(copy_at)
            type_ = await ev.value(r["type"], f"{where}.type")
            name = await ev.value(r["name"], f"{where}.name")
            if not isinstance(type_, str) or not isinstance(name, str):
                raise TemplateError("A resource's type and name must be strings.", where)
            if parent is not None and type_.count("/") == 0:
                type_, name = f"{parent.type}/{type_}", f"{parent.name}/{name}"
            scope = await ev.value(r["scope"], f"{where}.scope") if "scope" in r else None
            if nested:
                scope = await self._nested_scope(r, ev, where)
            rid = self._id_of(type_, name, scope, where)
            planned = Planned(rid, type_, name, await ev.value(r["apiversion"], f"{where}.apiVersion"), raw,
                              copy_at[1] if copy_at else None, copy_at[0] if copy_at else None)
            condition = await ev.value(r["condition"], f"{where}.condition") if "condition" in r else True
            if not isinstance(condition, bool):
                raise TemplateError("A resource's 'condition' must be a Boolean.", f"{where}.condition")
            if not condition:
                self.skipped.add(rid.lower())
                continue
            depends = r.get("dependson") or []
            if not isinstance(depends, list):
                raise TemplateError("'dependsOn' must be an array.", f"{where}.dependsOn")
            planned.depends_on = [await ev.value(d, f"{where}.dependsOn") for d in depends]
            if parent is not None:
                planned.depends_on.append(parent.id)
            planned.implicit = await self._referenced(r, ev)
            self.plan.append(planned)
            if copy_at is not None and str(_keys(r["copy"]).get("mode", "")).lower() == "serial":
                batch = int(_keys(r["copy"]).get("batchsize", 1) or 1)
                earlier = [p for p in self.plan if p.copy_name == copy_at[0] and p.copy_index is not None
                           and p.copy_index // batch == copy_at[1] // batch - 1]
                planned.depends_on += [p.id for p in earlier]
            for j, child in enumerate(r.get("resources") or []):
                await self._expand(child, f"{where}.resources[{j}]", planned)

    async def _referenced(self, r: dict[str, Any], ev: Evaluator) -> list[str]:
        """The names and ids a resource's body passes to reference() or listKeys() (ARM makes such a resource
        depend on the one referenced); an argument that needs a value known only while deploying is skipped."""
        found: list[str] = []

        def strings(value: Any) -> list[str]:
            if isinstance(value, str):
                return [value] if is_expression(value) else []
            if isinstance(value, list):
                return [s for v in value for s in strings(v)]
            if isinstance(value, dict):
                return [s for v in value.values() for s in strings(v)]
            return []

        body = {k: r[k.lower()] for k in BODY_KEYS if k.lower() in r}
        props = body.get("properties")
        if r["type"].lower() == DEPLOYMENT_TYPE.lower() and isinstance(props, dict) and \
                _nested_scope_option(_keys(props)) == "inner":  # its template's expressions are its own
            body["properties"] = {k: v for k, v in props.items() if k.lower() != "template"}
        for text in strings(body):
            try:
                tree = parse(text[1:-1])
            except TemplateError:
                continue  # reported when the body is evaluated
            for call in calls(tree):
                if call.name not in ("reference", "listkeys") or not call.args:
                    continue
                if any(c.name in ("reference", "listkeys") for c in calls(call.args[0])):
                    continue
                try:
                    target = await ev.evaluate(call.args[0])
                except TemplateError:
                    continue
                if isinstance(target, str):
                    found.append(target)
        return found

    async def _nested_scope(self, r: dict[str, Any], ev: Evaluator, where: str) -> str | None:
        """Where a nested deployment runs: its `subscriptionId` and `resourceGroup`, else this deployment's scope."""
        sub = await ev.value(r["subscriptionid"], f"{where}.subscriptionId") if "subscriptionid" in r else None
        group = await ev.value(r["resourcegroup"], f"{where}.resourceGroup") if "resourcegroup" in r else None
        for value, key in ((sub, "subscriptionId"), (group, "resourceGroup")):
            if value is not None and (not isinstance(value, str) or not value or "/" in value):
                raise TemplateError(f"A nested deployment's '{key}' must be a name.", f"{where}.{key}")
        if sub is None and group is None:
            return None
        scope = f"/subscriptions/{sub or self.target.subscription_id}"
        group = group if group is not None else (self.target.group_name if sub is None else None)
        return scope if group is None else f"{scope}/resourceGroups/{group}"

    def _id_of(self, type_: str, name: str, scope: Any, where: str) -> str:
        t = self.target
        group = t.scope_id
        try:
            path = fn.typed_path(type_, [name])
        except TemplateError as exc:
            exc.where = where
            raise
        if scope is None:
            return f"{group}/{path}"
        if not isinstance(scope, str):
            raise TemplateError("A resource's 'scope' must be a string.", f"{where}.scope")
        if not scope.startswith("/"):  # Bicep's form: 'Namespace/type/name' of a resource in this group
            scope = f"{group}/providers/{scope}"
        return f"{scope.rstrip('/')}/{path}"

    async def _resolve_dependencies(self) -> None:
        for p in self.plan:
            resolved: list[str] = []
            for d in p.depends_on:
                if not isinstance(d, str):
                    raise TemplateError(f"The dependsOn of '{p.name}' must name resources.")
                matches = [q.id for q in self.plan if q.id.lower() == d.lower() or (q.copy_name or "").lower() ==
                           d.lower() or (not d.startswith("/") and (q.name.lower() == d.lower() or
                                                                    f"{q.type}/{q.name}".lower() == d.lower()))]
                if not matches and d.lower() not in self.skipped and not any(
                        s.endswith("/" + d.lower()) for s in self.skipped):
                    raise TemplateError(f"The resource '{d}' is not defined in the template.")
                resolved += [m for m in matches if m != p.id and m not in resolved]
            for ref in p.implicit:
                resolved += [q.id for q in self.plan if q.id != p.id and q.id not in resolved and (
                    q.id.lower() == ref.lower() or (not ref.startswith("/") and q.name.lower() == ref.lower()))]
            p.depends_on = resolved
        state: dict[str, int] = {}
        by_id = {p.id: p for p in self.plan}

        def visit(p: Planned) -> None:
            state[p.id] = 1
            for d in p.depends_on:
                if state.get(d) == 1:
                    raise TemplateError(f"Circular dependency detected on resource: '{p.id}'.")
                if state.get(d) is None:
                    visit(by_id[d])
            state[p.id] = 2

        for p in self.plan:
            if p.id not in state:
                visit(p)

    # ------------------------------------------------------------------------- bodies and outputs
    async def body(self, p: Planned) -> dict[str, Any]:
        """The resource's PUT body, evaluated now (so `reference()` sees what its dependencies created)."""
        r = _keys(p.raw)
        copy = (p.copy_name, p.copy_index) if p.copy_index is not None else None
        out: dict[str, Any] = {}
        nested = p.type.lower() == DEPLOYMENT_TYPE.lower()
        for key in BODY_KEYS:
            if key.lower() in r and not (nested and key == "properties"):
                out[key] = await self.resolve(r[key.lower()], key, copy)
        if nested:
            out["properties"] = await self._nested_properties(r.get("properties") or {}, copy)
        return out

    async def _nested_properties(self, raw: dict[str, Any], copy: tuple[str | None, int] | None) -> dict[str, Any]:
        """A nested deployment's body: with `expressionEvaluationOptions.scope` `inner`, its template is its own
        (evaluated by the nested deployment, with the parameters given here); with `outer` (ARM's default) its
        expressions are this template's, evaluated here before it starts (literal `[` escaped again)."""
        props = _keys(raw)
        inner = _nested_scope_option(props) == "inner"
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key.lower() == "expressionevaluationoptions":
                continue
            if key.lower() == "template":
                out[key] = value if inner else _escape(await self.resolve(value, "properties.template", copy))
            else:
                out[key] = await self.resolve(value, f"properties.{key}", copy)
        return out

    async def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, raw in (self.template.get("outputs") or {}).items():
            o = _keys(raw) if isinstance(raw, dict) else {}
            type_ = PARAMETER_TYPES.get(str(o.get("type", "")).lower())
            if type_ is None:
                raise TemplateError(f"The template output '{name}' has an invalid type '{o.get('type')}'.")
            if "condition" in o and not await self.evaluator().value(o["condition"], f"outputs.{name}.condition"):
                continue
            if "copy" in o:
                c = _keys(o["copy"])
                count = await self.evaluator().value(c.get("count"), f"outputs.{name}.copy.count")
                value: Any = [await self.evaluator((None, i)).value(c.get("input"), f"outputs.{name}.copy.input")
                              for i in range(int(count))]
            else:
                value = await self.resolve(o.get("value"), f"outputs.{name}.value")
            check_value("output", name, type_, value)
            out[name] = {"type": type_} if type_.startswith("Secure") else {"type": type_, "value": value}
        return out

    def shown_parameters(self) -> dict[str, Any]:
        """The parameters as a deployment shows them: secure ones never with their value."""
        out: dict[str, Any] = {}
        for name in self.template.get("parameters") or {}:
            type_ = self.types[name.lower()]
            out[name] = {"type": type_} if type_.startswith("Secure") else {"type": type_,
                                                                           "value": self.values.get(name.lower())}
        return out


def _nested_scope_option(props: dict[str, Any]) -> str:
    options = props.get("expressionevaluationoptions") or {}
    scope = _keys(options).get("scope", "outer") if isinstance(options, dict) else None
    return str(scope).lower() if isinstance(scope, str) else ""


def _check_nested(r: dict[str, Any], where: str) -> None:
    """A nested deployment's properties: an inline `template` (a link cannot be fetched by Cielo), `parameters`,
    `mode`, `expressionEvaluationOptions` with `scope` `inner` or `outer`."""
    props = r.get("properties")
    if not isinstance(props, dict):
        raise TemplateError("A nested deployment needs 'properties' with an inline 'template'.", where)
    keys = _keys(props)
    if "templatelink" in keys:
        raise TemplateError("A nested deployment's 'templateLink' is not served by this Cielo: it cannot fetch a "
                            "template from a URL or a template spec; put the template inline as "
                            "'properties.template'.", f"{where}.properties.templateLink")
    unknown = sorted(k for k in props if k.lower() not in NESTED_PROPERTIES)
    if unknown:
        raise TemplateError(f"The nested deployment properties {', '.join(unknown)} are not served by this Cielo.",
                            f"{where}.properties")
    if not isinstance(keys.get("template"), dict):
        raise TemplateError("A nested deployment needs an inline 'properties.template' object.",
                            f"{where}.properties.template")
    if _nested_scope_option(keys) not in ("inner", "outer"):
        raise TemplateError("A nested deployment's 'expressionEvaluationOptions.scope' must be 'inner' or 'outer'.",
                            f"{where}.properties.expressionEvaluationOptions")


def _escape(value: Any) -> Any:
    """An evaluated value made literal again for a template: a string starting with `[` gets ARM's `[[` escape."""
    if isinstance(value, str):
        return "[" + value if value.startswith("[") else value
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    return value
