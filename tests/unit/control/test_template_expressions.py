"""The template expression language (cielo.control.templates): tokenizer, parser, the functions real templates call,
and template evaluation (parameters, variables, copy, conditions, dependsOn, outputs) with a fake resource manager."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from cielo.control.templates import functions as fn
from cielo.control.templates.expressions import Call, Evaluator, Literal, Member, TemplateError, parse
from cielo.control.templates.template import Deployment, ResourceFailure, Target

SUB, RG = "00000000-0000-0000-0000-000000000001", "rg1"
GROUP = f"/subscriptions/{SUB}/resourceGroups/{RG}"
SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"


class FakeClient:
    def __init__(self, resources: dict[str, dict[str, Any]] | None = None) -> None:
        self.resources = {k.lower(): v for k, v in (resources or {}).items()}
        self.posts: list[str] = []

    async def get(self, resource_id: str, api_version: str) -> dict[str, Any]:
        if resource_id.lower() not in self.resources:
            raise ResourceFailure("ResourceNotFound", f"'{resource_id}' was not found.", 404)
        return self.resources[resource_id.lower()]

    async def post(self, path: str, api_version: str) -> dict[str, Any]:
        self.posts.append(path)
        return {"key1": "k1", "key2": "k2"}


def _deployment(template: dict[str, Any], parameters: dict[str, Any] | None = None,
                client: FakeClient | None = None) -> Deployment:
    target = Target(SUB, "Sub", "tenant-1", RG, "local", {"env": "test"}, "dep1")
    return Deployment({"$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": [], **template},
                      {k: {"value": v} for k, v in (parameters or {}).items()}, target, client or FakeClient())


async def _eval(text: str, template: dict[str, Any] | None = None, parameters: dict[str, Any] | None = None) -> Any:
    d = _deployment(template or {}, parameters)
    await d.prepare()
    return await d.evaluator().value(text)


# ----------------------------------------------------------------------------- parsing
def test_parse_builds_calls_members_and_indexes() -> None:
    assert parse("concat('a', 1)") == Call("concat", (Literal("a"), Literal(1)))
    assert parse("reference('x').endpoint") == Member(Call("reference", (Literal("x"),)), "endpoint")
    assert parse("'it''s'") == Literal("it's")
    assert parse("add(-1, 2)") == Call("add", (Literal(-1), Literal(2)))


@pytest.mark.parametrize(("text", "says"), [
    ("concat('a'", "Expected ')'"), ("'open", "not terminated"), ("concat('a') x", "Unexpected"),
    ("a b", "Expected '('"), ("concat(#)", "character '#'"), ("", "empty"), (".x", "Expected a function"),
])
def test_parse_errors_name_the_position(text: str, says: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(says)):
        parse(text)


# ----------------------------------------------------------------------------- values and functions
@pytest.mark.parametrize(("text", "expected"), [
    ("[concat('a', 'b', string(1))]", "ab1"),
    ("[concat(createArray(1), createArray(2))]", [1, 2]),
    ("[format('{0}-{1}', 'x', 2)]", "x-2"),
    ("[toLower('AbC')]", "abc"), ("[toUpper('abc')]", "ABC"),
    ("[substring('abcdef', 1, 3)]", "bcd"), ("[replace('a-b-c', '-', '.')]", "a.b.c"),
    ("[split('a,b;c', createArray(',', ';'))]", ["a", "b", "c"]),
    ("[length('abc')]", 3), ("[length(createArray(1, 2))]", 2),
    ("[contains('Hello', 'ell')]", True), ("[contains(createObject('k', 1), 'K')]", True),
    ("[empty('')]", True), ("[empty(createArray(1))]", False),
    ("[union(createObject('a', 1), createObject('b', 2))]", {"a": 1, "b": 2}),
    ("[json('{\"a\": [1]}').a[0]]", 1), ("[int('42')]", 42), ("[bool('true')]", True),
    ("[first(createArray('x', 'y'))]", "x"), ("[last('xyz')]", "z"),
    ("[take(createArray(1, 2, 3), 2)]", [1, 2]), ("[skip(createArray(1, 2, 3), 2)]", [3]),
    ("[range(5, 3)]", [5, 6, 7]),
    ("[if(equals(1, 1), 'yes', nosuch())]", "yes"),
    ("[and(true(), not(false()))]", True), ("[or(false(), equals('a', 'b'))]", False),
    ("[base64('hi')]", base64.b64encode(b"hi").decode()), ("[base64ToString('aGk=')]", "hi"),
    ("[[not an expression]", "[not an expression]"), ("plain", "plain"),
    ("[resourceGroup().location]", "local"), ("[resourceGroup().tags.env]", "test"),
    ("[subscription().subscriptionId]", SUB), ("[tenant().tenantId]", "tenant-1"),
    ("[deployment().name]", "dep1"),
])
async def test_functions(text: str, expected: Any) -> None:
    assert await _eval(text) == expected


async def test_resource_ids() -> None:
    assert await _eval("[resourceId('Microsoft.X/a/b', 'n1', 'n2')]") == f"{GROUP}/providers/Microsoft.X/a/n1/b/n2"
    assert await _eval("[resourceId('other', 'Microsoft.X/a', 'n')]") == \
        f"/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.X/a/n"
    assert await _eval("[resourceId('s2', 'other', 'Microsoft.X/a', 'n')]") == \
        "/subscriptions/s2/resourceGroups/other/providers/Microsoft.X/a/n"
    assert await _eval("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'g')]") == \
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/g"
    assert await _eval("[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/roleAssignments', 'g')]") \
        == f"{GROUP}/providers/Microsoft.Authorization/roleAssignments/g"
    with pytest.raises(TemplateError, match="needs 2 name segment"):
        await _eval("[resourceId('Microsoft.X/a/b', 'n1')]")


def test_guid_and_unique_string_are_deterministic() -> None:
    assert fn.guid("a", "b") == fn.guid("a", "b") != fn.guid("a", "c")
    assert len(fn.guid("a")) == 36
    value = fn.unique_string("x")
    assert value == fn.unique_string("x") and len(value) == 13 and value.isalnum() and value.islower()


@pytest.mark.parametrize(("text", "says"), [
    ("[nosuch()]", "'nosuch' is not valid"), ("[parameters('missing')]", "not found"),
    ("[createObject('a', 1).b]", "doesn't exist"), ("[createArray(1)[3]]", "out of range"),
    ("[length(1)]", "expects a string"), ("[copyIndex()]", "not expected"), ("[substring('ab', 1, 5)]", "within"),
])
async def test_evaluation_errors(text: str, says: str) -> None:
    with pytest.raises(TemplateError, match=says):
        await _eval(text)


async def test_evaluator_never_runs_python() -> None:
    ev = Evaluator({"concat": fn.concat})
    with pytest.raises(TemplateError):
        await ev.value("[__import__('os')]")


# ----------------------------------------------------------------------------- templates
async def test_parameters_defaults_variables_and_checks() -> None:
    template = {"parameters": {"a": {"type": "string", "defaultValue": "[concat('x', parameters('b'))]"},
                               "b": {"type": "string", "minLength": 1, "maxLength": 3},
                               "n": {"type": "int", "defaultValue": 2, "minValue": 1, "maxValue": 3}},
                "variables": {"v": "[concat(parameters('a'), '-', variables('w'))]", "w": "[parameters('n')]"}}
    assert await _eval("[variables('v')]", template, {"b": "yz"}) == "xyz-2"
    with pytest.raises(TemplateError, match="length"):
        await _eval("[variables('v')]", template, {"b": "long"})
    with pytest.raises(TemplateError, match="between"):
        await _eval("x", template, {"b": "y", "n": 4})
    with pytest.raises(TemplateError, match="refers to itself"):
        await _eval("[variables('c')]", {"variables": {"c": "[variables('c')]"}})


async def test_copy_condition_children_and_dependencies() -> None:
    template = {"resources": [
        {"type": "Microsoft.X/a", "apiVersion": "2023-01-01", "name": "[concat('n', copyIndex(1))]",
         "condition": "[not(equals(copyIndex(), 1))]", "copy": {"name": "loop", "count": 3}},
        {"type": "Microsoft.X/b", "apiVersion": "2023-01-01", "name": "parent", "dependsOn": ["loop"],
         "resources": [{"type": "kids", "apiVersion": "2023-01-01", "name": "kid"}]},
        {"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01", "name": "[guid('x')]",
         "scope": "Microsoft.X/b/parent", "dependsOn": ["[resourceId('Microsoft.X/b', 'parent')]", "n2"]}]}
    d = _deployment(template)
    plan = await d.prepare()
    ids = [p.id for p in plan]
    assert ids == [f"{GROUP}/providers/Microsoft.X/a/n1", f"{GROUP}/providers/Microsoft.X/a/n3",
                   f"{GROUP}/providers/Microsoft.X/b/parent", f"{GROUP}/providers/Microsoft.X/b/parent/kids/kid",
                   f"{GROUP}/providers/Microsoft.X/b/parent/providers/Microsoft.Authorization/roleAssignments/"
                   f"{fn.guid('x')}"]
    assert plan[2].depends_on == ids[:2]
    assert plan[3].depends_on == [ids[2]]  # a child depends on its parent
    assert plan[4].depends_on == [ids[2]]  # n2 was skipped by its condition: the dependency is dropped


async def test_reference_list_keys_and_outputs() -> None:
    rid = f"{GROUP}/providers/Microsoft.X/a/one"
    client = FakeClient({rid: {"id": rid, "properties": {"endpoint": "https://e/"}, "identity": {"principalId": "p"}}})
    keys = "[listKeys(resourceId('Microsoft.X/a', 'one'), '2023-01-01').key1]"
    template = {"resources": [{"type": "Microsoft.X/a", "apiVersion": "2023-01-01", "name": "one",
                               "properties": {"k": keys}}],
                "outputs": {"endpoint": {"type": "string", "value": "[reference('one').endpoint]"},
                            "principal": {"type": "string", "value": f"[reference('{rid}', '2023-01-01', 'Full')"
                                                                     ".identity.principalId]"},
                            "bad": {"type": "int", "value": "x", "condition": "[false()]"}}}
    d = _deployment(template, client=client)
    [p] = await d.prepare()
    assert await d.body(p) == {"properties": {"k": "k1"}}
    assert client.posts == [f"{rid}/listKeys"]
    assert await d.outputs() == {"endpoint": {"type": "String", "value": "https://e/"},
                                 "principal": {"type": "String", "value": "p"}}
    template["outputs"] = {"bad": {"type": "int", "value": "x"}}
    with pytest.raises(TemplateError, match="Expected a value of type 'Int'"):
        await _deployment(template, client=client).outputs()


def test_jsonc_reads_what_az_sends() -> None:
    from cielo.control.templates import jsonc

    spliced = '{"properties": {"mode": "Incremental", template:{\r\n  // a comment\r\n  "a": "x // not a comment",' \
              ' /* block */ "b": [1, 2,],\r\n}}}'
    assert jsonc.loads(spliced) == {"properties": {"mode": "Incremental", "template": {"a": "x // not a comment",
                                                                                       "b": [1, 2]}}}
    assert jsonc.loads('{"s": "say \\"hi\\""}') == {"s": 'say "hi"'}
    with pytest.raises(ValueError):
        jsonc.loads("{a: }")


async def test_property_and_variable_copy_loops() -> None:
    template = {"variables": {"copy": [{"name": "disks", "count": 2, "input": "[concat('d', copyIndex('disks'))]"}],
                              "nested": {"copy": [{"name": "items", "count": 2,
                                                   "input": {"n": "[copyIndex('items', 1)]"}}], "keep": "x"}},
                "resources": [{"type": "Microsoft.X/a", "apiVersion": "2023-01-01",
                               "name": "[concat('r', copyIndex())]", "copy": {"name": "rs", "count": 2},
                               "properties": {"copy": [{"name": "rules", "count": "[add(copyIndex(), 1)]",
                                                        "input": {"res": "[copyIndex()]",
                                                                  "rule": "[copyIndex('rules')]"}}]}}]}
    d = _deployment(template)
    plan = await d.prepare()
    assert await d.variable("disks") == ["d0", "d1"]
    assert await d.variable("nested") == {"keep": "x", "items": [{"n": 1}, {"n": 2}]}
    assert await d.body(plan[1]) == {"properties": {"rules": [{"res": 1, "rule": 0}, {"res": 1, "rule": 1}]}}
    with pytest.raises(TemplateError, match="property copy loop"):
        await d.resolve({"copy": [{"name": "x", "count": "[createArray()]", "input": 1}]}, "p")


async def test_reference_and_list_keys_make_implicit_dependencies() -> None:
    template = {"resources": [
        {"type": "Microsoft.X/a", "apiVersion": "2023-01-01", "name": "user",
         "properties": {"p": "[reference('src').principalId]",
                        "k": "[listKeys(resourceId('Microsoft.X/b', 'keys'), '2023-01-01').key1]",
                        "outside": "[reference('/subscriptions/s/resourceGroups/g/providers/Microsoft.X/c/n', '1')]"}},
        {"type": "Microsoft.X/a", "apiVersion": "2023-01-01", "name": "src"},
        {"type": "Microsoft.X/b", "apiVersion": "2023-01-01", "name": "keys"}]}
    d = _deployment(template)
    plan = await d.prepare()
    assert plan[0].depends_on == [f"{GROUP}/providers/Microsoft.X/a/src", f"{GROUP}/providers/Microsoft.X/b/keys"]


async def test_the_runner_orders_by_dependencies_and_stops_dependents_of_a_failure() -> None:
    from cielo.control.templates import runner

    template = {"resources": [
        {"type": "Microsoft.X/a", "apiVersion": "1", "name": "first"},
        {"type": "Microsoft.X/a", "apiVersion": "1", "name": "second", "dependsOn": ["first"]},
        {"type": "Microsoft.X/a", "apiVersion": "1", "name": "broken"},
        {"type": "Microsoft.X/a", "apiVersion": "1", "name": "after-broken", "dependsOn": ["broken"]},
        {"type": "Microsoft.X/a", "apiVersion": "1", "name": "bug"},
        {"type": "Microsoft.X/a", "apiVersion": "1", "name": "after-bug", "dependsOn": ["bug"]}]}
    order: list[str] = []

    class Writer:
        async def put(self, resource_id: str, api_version: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            name = resource_id.rsplit("/", 1)[1]
            if name == "broken":
                raise ResourceFailure("AuthorizationFailed", "no", 403)
            if name == "bug":
                raise RuntimeError("a bug")
            order.append(name)
            return 201, {}

    d = _deployment(template)
    await d.prepare()
    operations: list[runner.Operation] = []
    failed = await runner.run(d, Writer(), operations)
    assert order.index("first") < order.index("second") and "after-broken" not in order and "after-bug" not in order
    assert sorted((op.target.name, op.error["code"]) for op in failed if op.error) == [
        ("broken", "AuthorizationFailed"), ("bug", "InternalServerError")]
    assert {op.target.name for op in operations} == {"first", "second", "broken", "bug"}


def test_jsonc_positions_name_line_and_column() -> None:
    from cielo.control.templates import jsonc

    text = ('{"properties": {\n  "mode": "Incremental", template:{\n    // c\n    "resources": [\n'
            '      {"name": "[x(]"}]}}}')
    at = jsonc.positions(text)
    assert at["properties.template.resources[0].name"] == (5, 16)
    assert at["properties.mode"] == (2, 11)
    assert jsonc.positions("{broken") == {"": (1, 1)}
