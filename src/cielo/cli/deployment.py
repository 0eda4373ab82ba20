"""`cielo deployment group …` and `cielo deployment sub …`: ARM template deployments to a resource group or a
subscription, mirroring `az deployment group` and `az deployment sub`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from cielo.cli.armcall import arm, group_path, subscription_id
from cielo.cli.common import CliError, SpaceListCommand, global_options, table_layout

# How often `create` asks whether the deployment is done (az's poller asks every few seconds; Cielo is local).
POLL_INTERVAL_S = 0.5
ACTIVE = ("Accepted", "Running")


class _ParametersCommand(SpaceListCommand):
    """Takes az's `--parameters a=1 b=2` (several values after one flag) as well as repeated `--parameters`."""

    LIST_OPTIONS = ("--parameters", "-p")


def _path(resource_group: str, name: str, subscription: str | None = None) -> str:
    return f"{group_path(resource_group, subscription)}/providers/Microsoft.Resources/deployments/{name}"


def _sub_path(name: str | None = None, subscription: str | None = None) -> str:
    base = f"/subscriptions/{subscription_id(subscription)}/providers/Microsoft.Resources/deployments"
    return base if name is None else f"{base}/{name}"


def _read_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"Failed to parse {what}: {exc}") from exc


def _template(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"Unable to read the template file '{path}': {exc.strerror}") from exc
    template = _read_json(text, f"template file '{path}'")
    if not isinstance(template, dict):
        raise CliError(f"The template file '{path}' must hold a JSON object.")
    return template


def _typed(value: str, declared: str | None) -> Any:
    """A `name=value` parameter as az converts it: by the template's declared type."""
    kind = (declared or "string").lower()
    if kind == "int":
        try:
            return int(value)
        except ValueError as exc:
            raise CliError(f"'{value}' is not a valid int.") from exc
    if kind == "bool":
        return value.lower() == "true"
    if kind in ("array", "object", "secureobject"):
        return _read_json(value, "parameter value")
    return value


def parameters(values: tuple[str, ...], template: dict[str, Any]) -> dict[str, Any]:
    """`@file.json` (a parameters file or a bare `{name: {value}}` object), inline JSON, or `name=value`."""
    declared = {k.lower(): str((v or {}).get("type", "")) for k, v in (template.get("parameters") or {}).items()}
    out: dict[str, Any] = {}
    for item in values:
        if item.startswith("@") or item.lstrip().startswith("{"):
            if item.startswith("@"):
                try:
                    text = Path(item[1:]).read_text(encoding="utf-8-sig")
                except OSError as exc:
                    raise CliError(f"Unable to read the parameters file '{item[1:]}': {exc.strerror}") from exc
            else:
                text = item
            loaded = _read_json(text, "parameters")
            if isinstance(loaded, dict) and isinstance(loaded.get("parameters"), dict):
                loaded = loaded["parameters"]
            if not isinstance(loaded, dict):
                raise CliError("The parameters must be a JSON object.")
            out.update(loaded)
            continue
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"Unable to parse parameter: {item}. Use @file.json, a JSON object, or NAME=VALUE.")
        out[name] = {"value": _typed(value, declared.get(name.lower()))}
    return out


def _body(template_file: str, values: tuple[str, ...], mode: str, location: str | None = None) -> dict[str, Any]:
    template = _template(template_file)
    body: dict[str, Any] = {"properties": {"template": template, "parameters": parameters(values, template),
                                           "mode": mode}}
    if location is not None:
        body["location"] = location
    return body


def _wait(path: str, started: dict[str, Any]) -> dict[str, Any]:
    """Polls until the deployment ends; a failed one is an error with az's `{"status", "error"}`."""
    result = started
    while result.get("properties", {}).get("provisioningState") in ACTIVE:
        time.sleep(POLL_INTERVAL_S)
        result = arm("GET", path)
    props = result.get("properties", {})
    if props.get("provisioningState") != "Succeeded":
        raise CliError(json.dumps({"status": props.get("provisioningState"), "error": props.get("error")}))
    return result


def _common(func: Any) -> Any:
    func = click.option("--subscription", default=None, help="Subscription name or id.")(func)
    func = click.option("-g", "--resource-group", "resource_group", required=True, help="Resource group name.")(func)
    return func


def _template_options(func: Any) -> Any:
    func = click.option("--mode", type=click.Choice(["Incremental", "Complete"], case_sensitive=False),
                        default="Incremental", help="Incremental, or Complete: also delete the group's resources the "
                        "template does not name.")(func)
    func = click.option("-p", "--parameters", "values", multiple=True,
                        help="@file.json, a JSON object, or NAME=VALUE (repeatable).")(func)
    func = click.option("-f", "--template-file", "template_file", required=True, help="The template's path.")(func)
    return func


@click.group("deployment")
def deployment() -> None:
    """Manage Azure Resource Manager template deployments.

    \b
    Examples:
      cielo deployment group create -g my-rg --template-file azuredeploy.json --parameters name=x
      cielo deployment group show -g my-rg -n azuredeploy --query properties.outputs"""


@deployment.group("group")
def group() -> None:
    """Manage template deployments at resource group scope.

    \b
    Examples:
      cielo deployment group create -g my-rg -f azuredeploy.json -p @azuredeploy.parameters.json
      cielo deployment group what-if -g my-rg -f azuredeploy.json -p name=x
      cielo deployment group list -g my-rg -o table"""


@group.command("create", cls=_ParametersCommand)
@_common
@click.option("-n", "--name", default=None, help="The deployment name (default: the template file's name).")
@_template_options
@click.option("--no-wait", "no_wait", is_flag=True, default=False, help="Do not wait for the deployment to finish.")
@global_options
def create(resource_group: str, subscription: str | None, name: str | None, template_file: str,
           values: tuple[str, ...], mode: str, no_wait: bool) -> Any:
    """Start a deployment and (unless --no-wait) wait for it; a failed deployment is an error."""
    name = name or Path(template_file).stem
    path = _path(resource_group, name, subscription)
    started = arm("PUT", path, _body(template_file, values, mode))
    if no_wait:
        return None
    return _wait(path, started)


@group.command("show")
@_common
@click.option("-n", "--name", required=True, help="The deployment name.")
@global_options
def show(resource_group: str, subscription: str | None, name: str) -> Any:
    """Show a deployment."""
    return arm("GET", _path(resource_group, name, subscription))


@group.command("list")
@_common
@global_options
@table_layout(lambda result: [{"Name": d["name"], "State": d["properties"]["provisioningState"],
                               "Timestamp": d["properties"]["timestamp"], "Mode": d["properties"]["mode"],
                               "ResourceGroup": d["id"].split("/")[4]} for d in result])
def list_(resource_group: str, subscription: str | None) -> Any:
    """List the deployments of a resource group."""
    return arm("GET", f"{group_path(resource_group, subscription)}/providers/Microsoft.Resources/deployments")["value"]


@group.command("delete")
@_common
@click.option("-n", "--name", required=True, help="The deployment name.")
@click.option("--no-wait", "no_wait", is_flag=True, default=False, help="Accepted for az parity (delete is "
              "immediate).")
@global_options
def delete(resource_group: str, subscription: str | None, name: str, no_wait: bool) -> Any:
    """Delete a deployment's record (never the resources it created)."""
    arm("DELETE", _path(resource_group, name, subscription))
    return None


@group.command("validate", cls=_ParametersCommand)
@_common
@click.option("-n", "--name", default=None, help="The deployment name (default: the template file's name).")
@_template_options
@global_options
def validate(resource_group: str, subscription: str | None, name: str | None, template_file: str,
             values: tuple[str, ...], mode: str) -> Any:
    """Check a template, its parameters and the caller's rights without deploying it."""
    name = name or Path(template_file).stem
    return arm("POST", _path(resource_group, name, subscription) + "/validate", _body(template_file, values, mode))


@group.command("what-if", cls=_ParametersCommand)
@_common
@click.option("-n", "--name", default=None, help="The deployment name (default: the template file's name).")
@_template_options
@global_options
def what_if(resource_group: str, subscription: str | None, name: str | None, template_file: str,
            values: tuple[str, ...], mode: str) -> Any:
    """Show what a deployment would create or change (as JSON: az's --no-pretty-print form)."""
    name = name or Path(template_file).stem
    return arm("POST", _path(resource_group, name, subscription) + "/whatIf", _body(template_file, values, mode))


# ----------------------------------------------------------------------------- subscription scope
def _sub_template_options(func: Any) -> Any:
    func = click.option("-p", "--parameters", "values", multiple=True,
                        help="@file.json, a JSON object, or NAME=VALUE (repeatable).")(func)
    func = click.option("-f", "--template-file", "template_file", required=True, help="The template's path.")(func)
    func = click.option("-l", "--location", required=True,
                        help="The location to store the deployment metadata (required, as in az).")(func)
    func = click.option("-n", "--name", default=None,
                        help="The deployment name (default: the template file's name).")(func)
    func = click.option("--subscription", default=None, help="Subscription name or id.")(func)
    return func


@deployment.group("sub")
def sub() -> None:
    """Manage template deployments at subscription scope (Incremental only, as in Azure).

    \b
    Examples:
      cielo deployment sub create -l local -f create-rg.json -p rgName=my-rg rgLocation=local
      cielo deployment sub what-if -l local -f create-rg.json -p rgName=my-rg rgLocation=local
      cielo deployment sub list -o table"""


@sub.command("create", cls=_ParametersCommand)
@_sub_template_options
@click.option("--no-wait", "no_wait", is_flag=True, default=False, help="Do not wait for the deployment to finish.")
@global_options
def sub_create(subscription: str | None, name: str | None, location: str, template_file: str,
               values: tuple[str, ...], no_wait: bool) -> Any:
    """Start a subscription deployment and (unless --no-wait) wait for it; a failed deployment is an error."""
    path = _sub_path(name or Path(template_file).stem, subscription)
    started = arm("PUT", path, _body(template_file, values, "Incremental", location))
    return None if no_wait else _wait(path, started)


@sub.command("show")
@click.option("--subscription", default=None, help="Subscription name or id.")
@click.option("-n", "--name", required=True, help="The deployment name.")
@global_options
def sub_show(subscription: str | None, name: str) -> Any:
    """Show a subscription deployment."""
    return arm("GET", _sub_path(name, subscription))


@sub.command("list")
@click.option("--subscription", default=None, help="Subscription name or id.")
@global_options
@table_layout(lambda result: [{"Name": d["name"], "Location": d.get("location"),
                               "State": d["properties"]["provisioningState"],
                               "Timestamp": d["properties"]["timestamp"], "Mode": d["properties"]["mode"]}
                              for d in result])
def sub_list(subscription: str | None) -> Any:
    """List the subscription's deployments (not those of its resource groups)."""
    return arm("GET", _sub_path(None, subscription))["value"]


@sub.command("delete")
@click.option("--subscription", default=None, help="Subscription name or id.")
@click.option("-n", "--name", required=True, help="The deployment name.")
@click.option("--no-wait", "no_wait", is_flag=True, default=False, help="Accepted for az parity (delete is "
              "immediate).")
@global_options
def sub_delete(subscription: str | None, name: str, no_wait: bool) -> Any:
    """Delete a subscription deployment's record (never the resources it created)."""
    arm("DELETE", _sub_path(name, subscription))
    return None


@sub.command("validate", cls=_ParametersCommand)
@_sub_template_options
@global_options
def sub_validate(subscription: str | None, name: str | None, location: str, template_file: str,
                 values: tuple[str, ...]) -> Any:
    """Check a subscription template, its parameters and the caller's rights without deploying it."""
    return _sub_action("validate", subscription, name, location, template_file, values)


@sub.command("what-if", cls=_ParametersCommand)
@_sub_template_options
@global_options
def sub_what_if(subscription: str | None, name: str | None, location: str, template_file: str,
                values: tuple[str, ...]) -> Any:
    """Show what a subscription deployment would create or change (as JSON: az's --no-pretty-print form)."""
    return _sub_action("whatIf", subscription, name, location, template_file, values)


def _sub_action(action: str, subscription: str | None, name: str | None, location: str, template_file: str,
                values: tuple[str, ...]) -> Any:
    """`POST …/deployments/{name}/{action}` with the template (named after its file unless -n names it)."""
    path = _sub_path(name or Path(template_file).stem, subscription)
    return arm("POST", f"{path}/{action}", _body(template_file, values, "Incremental", location))
