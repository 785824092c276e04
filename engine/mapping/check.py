"""Static checks of a mapping file, before any record is rendered: `file:line: field: message`.

Checked: the file's shape (`schemas/mapping.schema.json`), the target and its payload schema, every
expression's syntax, unknown names / filters / functions, rule tables (exist, loadable, keyword
arguments are input columns), and property names against the target schema (typos like `CardCod`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
from jinja2 import TemplateSyntaxError, meta, nodes

from engine.errors import ConfigError
from engine.mapping import functions as fn
from engine.mapping.core import ENV, find_project_root
from engine.mapping.source import Lines, line_of, load_yaml_with_lines
from engine.problems import Problem
from engine.rules import RuleTable, load_rule_table
from engine.schemas import format_schema, payload_schema_path

CONFIG_KEYS = {"let", "fields", "when", "key"}


def _mapping_schema() -> dict[str, Any]:
    """The engine's mapping format schema, from the installed package (engine.schemas)."""
    return format_schema("mapping")


def check_mapping_file(path: Path, *, target_entity: str | None = None) -> list[Problem]:
    """All problems of one mapping file (empty list: the file is usable). Never raises for bad content."""
    path = Path(path)
    try:
        data, lines = load_yaml_with_lines(path)
    except ConfigError as exc:
        return [Problem(str(path), None, "", str(exc).split(": ", 1)[-1] if str(exc).startswith(str(path)) else str(exc))]
    return check_mapping_data(path, data, lines, project_root=find_project_root(path), target_entity=target_entity)


def check_mapping_data(
    path: Path, data: Any, lines: Lines, *, project_root: Path, target_entity: str | None
) -> list[Problem]:
    file = str(path)
    if not isinstance(data, Mapping):
        return [Problem(file, 1, "", "a mapping file must be a YAML mapping with `target` and `fields`")]
    problems: list[Problem] = []
    for err in sorted(jsonschema.Draft7Validator(_mapping_schema()).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        at = tuple(err.absolute_path)
        problems.append(Problem(file, line_of(lines, at), ".".join(map(str, at)) or "(file)", err.message))
    if problems:
        return problems
    target = data["target"]
    if target_entity is not None and target != target_entity:
        problems.append(Problem(file, line_of(lines, ("target",)), "target", f"is {target!r}, but the pipeline writes {target_entity!r}"))
    schema: dict[str, Any] | None = None
    try:
        schema = json.loads(payload_schema_path(target, project_root).read_text())
    except ConfigError as exc:
        problems.append(Problem(file, line_of(lines, ("target",)), "target", str(exc)))
    checker = _ExprChecker(file, lines, project_root, problems)
    scope = checker.lets(data.get("let") or {}, ("let",), {"record"})
    for cond in data.get("skip_unless") or {}:
        checker.expr(cond, ("skip_unless", cond), scope)
    for cond in data.get("wait_unless") or {}:
        checker.expr(cond, ("wait_unless", cond), scope)
    for section, key in (("external_ref", "value"), ("crosswalk", "key")):
        if isinstance(data.get(section), Mapping) and data[section].get(key) is not None:
            checker.expr(data[section][key], (section, key), scope)
    checker.fields(data["fields"], ("fields",), scope, schema, target)
    ref_field = (data.get("external_ref") or {}).get("field")
    if schema is not None and ref_field and not _known_property(schema, ref_field):
        problems.append(Problem(file, line_of(lines, ("external_ref", "field")), "external_ref.field", f"{ref_field!r} is not a property of {target}"))
    return problems


def _known_property(schema: Mapping[str, Any] | None, name: str) -> bool:
    if schema is None:
        return True
    if name in (schema.get("properties") or {}):
        return True
    return any(re.search(p, name) for p in (schema.get("patternProperties") or {}))


class _ExprChecker:
    def __init__(self, file: str, lines: Lines, project_root: Path, problems: list[Problem]):
        self.file, self.lines, self.root, self.problems = file, lines, project_root, problems
        self.tables: dict[str, RuleTable | None] = {}

    def add(self, at: tuple, message: str) -> None:
        field = ".".join(str(p) for p in at if p != "fields") or "(file)"
        self.problems.append(Problem(self.file, line_of(self.lines, at), field, message))

    def lets(self, lets: Mapping[str, Any], at: tuple, scope: set[str]) -> set[str]:
        scope = set(scope)
        for name, source in lets.items():
            if not str(name).isidentifier() or str(name).startswith("_"):
                self.add((*at, name), f"let name {name!r} must be a name (letters, digits, '_'; not starting with '_')")
            self.expr(source, (*at, name), scope)
            scope.add(str(name))
        return scope

    def expr(self, source: Any, at: tuple, scope: set[str]) -> None:
        if not isinstance(source, str):
            return
        try:
            tree = ENV.parse(f"{{{{ ({source}) }}}}")
        except TemplateSyntaxError as exc:
            self.add(at, f"invalid expression `{source}`: {exc.message}")
            return
        allowed = scope | set(ENV.globals) | {fn.LOOKUPS_VAR, fn.API_VERSION_VAR}
        try:
            undeclared = meta.find_undeclared_variables(tree)
        except TemplateSyntaxError:  # an unknown filter or test: reported below
            undeclared = set()
        for name in sorted(undeclared - allowed):
            hint = f" (a literal string needs quotes: \"'{name}'\")" if re.match(r"^([A-Z]|[a-z]{1,4}[A-Z_])", name) else ""
            self.add(at, f"unknown name {name!r} in `{source}`{hint}; known: {', '.join(sorted(scope))}")
        for flt in tree.find_all(nodes.Filter):
            if flt.name not in ENV.filters:
                self.add(at, f"unknown filter {flt.name!r} in `{source}`")
        for test in tree.find_all(nodes.Test):
            if test.name not in ENV.tests:
                self.add(at, f"unknown test {test.name!r} in `{source}`")
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == "rule":
                self.rule_call(call, at, source)

    def rule_call(self, call: nodes.Call, at: tuple, source: str) -> None:
        if not call.args or not isinstance(call.args[0], nodes.Const) or not isinstance(call.args[0].value, str):
            self.add(at, f"rule(): the table name must be a literal string in `{source}`")
            return
        name = call.args[0].value
        if name not in self.tables:
            path = self.root / "mappings" / "rules" / f"{name}.csv"
            try:
                self.tables[name] = load_rule_table(path) if path.is_file() else None
            except ConfigError as exc:
                self.tables[name] = None
                self.add(at, f"rule table {name!r}: {exc}")
                return
            if self.tables[name] is None:
                self.add(at, f"rule table {name!r} not found: expected {path}")
        table = self.tables.get(name)
        if table is None:
            return
        for kw in call.kwargs:
            if kw.key not in table.inputs:
                self.add(at, f"rule table {name!r} has no input column {kw.key!r} (inputs: {', '.join(table.inputs)})")
        if len(call.args) > 1:
            self.add(at, f"rule(): pass values by column name, e.g. rule('{name}', {table.inputs[0] if table.inputs else 'x'}=...)")

    def fields(self, fields: Any, at: tuple, scope: set[str], schema: Mapping[str, Any] | None, target: str) -> None:
        if not isinstance(fields, Mapping):
            self.add(at, "must be a mapping of property names to expressions")
            return
        for name, raw in fields.items():
            here = (*at, name)
            name = str(name)
            if name.startswith("_"):
                if schema is not None and name not in (schema.get("properties") or {}):
                    self.add(here, f"{name!r}: names starting with '_' are reserved for the engine (allowed here: "
                             f"{', '.join(k for k in (schema.get('properties') or {}) if k.startswith('_')) or 'none'})")
            elif not _known_property(schema, name):
                self.add(here, f"{name!r} is not a writable property of {target} (see its payload schema)")
            self.value(raw, here, scope, _child_schema(schema, name), f"{target}.{name}")

    def value(self, raw: Any, at: tuple, scope: set[str], schema: Mapping[str, Any] | None, target: str) -> None:
        if isinstance(raw, Mapping):
            if "for_each" in raw:
                extra = set(raw) - {"for_each", "as", *CONFIG_KEYS}
                if extra:
                    self.add(at, f"for_each block: unknown keys {sorted(extra)} (allowed: for_each, as, key, when, let, fields)")
                self.expr(raw["for_each"], (*at, "for_each"), scope)
                var = raw.get("as", "item")
                if not isinstance(var, str) or not var.isidentifier():
                    self.add((*at, "as"), f"`as` must be a name, got {var!r}")
                    var = "item"
                self.block(raw, at, scope | {var}, schema, target)
            elif "fields" in raw and set(raw) <= CONFIG_KEYS:
                self.block(raw, at, scope, schema, target)
            else:
                self.fields(raw, at, scope, schema, target)
        elif isinstance(raw, list):
            item_schema = (schema or {}).get("items") if schema else None
            for i, item in enumerate(raw):
                self.value(item, (*at, i), scope, item_schema, target)
        else:
            self.expr(raw, at, scope)

    def block(self, raw: Mapping[str, Any], at: tuple, scope: set[str], schema: Mapping[str, Any] | None, target: str) -> None:
        if raw.get("when") is not None:
            self.expr(raw["when"], (*at, "when"), scope)
        inner = self.lets(raw.get("let") or {}, (*at, "let"), scope)
        if raw.get("key") is not None:
            self.expr(raw["key"], (*at, "key"), inner)
        item_schema = schema.get("items") if schema and schema.get("type") == "array" else schema
        self.fields(raw.get("fields") or {}, (*at, "fields"), inner, item_schema, target)


def _child_schema(schema: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    if schema is None:
        return None
    prop = (schema.get("properties") or {}).get(name)
    if not isinstance(prop, Mapping):
        return None
    if prop.get("type") == "array" and isinstance(prop.get("items"), Mapping):
        return prop if prop["items"].get("properties") else None
    return prop if prop.get("properties") else None
