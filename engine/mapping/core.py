"""Compiling a mapping file and rendering staged records into target payloads.

A mapping file (`mappings/<name>.yaml`)::

    target: PurchaseOrders                 # schemas/sapb1/PurchaseOrders.schema.json ("jaggaer:X" -> schemas/jaggaer/X)
    on_overflow: fail                      # strings longer than B1's field length: fail | truncate
    control_characters: strip              # C0 (not TAB/LF/CR), DEL, C1 in rendered strings: strip | refuse
    external_ref: {field: U_JaggaerRef, value: "'PO-' ~ record.header.poNumber"}
    crosswalk: {type: purchase_orders, key: record.header.poNumber}
    wait_unless: {"record.header.workflowStatus == 'Completed'": "not approved in JAGGAER yet"}
    let: {supplier: record.header.supplier}
    fields:
      CardCode: crosswalk('suppliers', supplier.id)
      DocumentLines:
        for_each: record.lineList.purchaseOrderLine
        as: line
        key: line.lineNumber                # identity of a line across runs (diffs, B1 LineNum)
        let: {gl: "rule('gl_accounts', commodity=line.item.commodityCode | default(''))"}
        fields: {AccountCode: gl.AccountCode, Quantity: line.quantity | decimal}

String values are Jinja expressions (a literal string needs quotes: `"'cSupplier'"`); numbers and
booleans are constants. A field whose value renders to None is left out of the payload.
Every rendered string loses its control characters before lengths and the payload schema are checked
(`refuse`: the record is quarantined naming the field and the character instead).

Per block (the header, each line) all expressions are compiled into ONE sandboxed template run, so a
record costs a handful of template calls. When a block fails, its expressions are re-run one by one
to name the field.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import fastjsonschema
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import UndefinedError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import ConfigError
from engine.mapping import functions as fn
from engine.mapping.source import Lines, line_of, load_yaml_with_lines
from engine.rules import RuleTable, load_rule_tables
from engine.schemas import payload_schema_path

RESERVED_PREFIX = "_"
Status = Literal["ok", "wait", "quarantine", "skip"]


# ---------------------------------------------------------------- environment


def make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters.update(fn.FILTERS)
    env.globals.update(fn.GLOBALS)
    return env


ENV = make_environment()
_GLOBALS = dict(ENV.globals)


def _run(template: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """Run a compiled `{% set %}` template; return the variables it set. (Builds the Context directly:
    `Template.new_context` merges the globals ChainMap on every call, the main cost of a small block.)"""
    ctx = Context(ENV, {**_GLOBALS, **variables}, template.name, template.blocks)
    for _ in template.root_render_func(ctx):
        pass
    return ctx.vars


# ---------------------------------------------------------------- results and lookups


@dataclass(frozen=True)
class RenderResult:
    """What one staged record renders to: a payload, or why it waits / is quarantined / is skipped."""

    status: Status
    mapping_version: str
    payload: dict[str, Any] | None = None
    reason: str | None = None
    key: str | None = None
    external_ref: str | None = None
    crosswalk_key: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class CrosswalkEntry(NamedTuple):
    """A JAGGAER object already in B1: its key there and, for documents, J1P line number -> B1 LineNum."""

    b1_key: str
    line_map: dict[str, int] | None = None


@dataclass
class Lookups:
    """What rendering may look up: crosswalks (type -> jaggaer id -> entry), B1's reference codes, rule tables."""

    crosswalk: MappingABC[str, MappingABC[str, Any]] = field(default_factory=dict)
    reference_codes: MappingABC[str, Any] | None = None
    api_version: str | None = None  # "v1" | "v2"; None: the mapping's (load_mapping(api_version=...))
    rule_tables: dict[str, RuleTable] = field(default_factory=dict)
    # type -> JAGGAER id -> why that object's own record was skipped or quarantined (filled by `render`
    # as records are rendered: a run renders dependencies first, so a dependant is quarantined with
    # that reason instead of waiting for something that is not coming)
    blocked: dict[str, dict[str, str]] = field(default_factory=dict)
    _reverse: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def blocked_reason(self, object_type: str, jaggaer_id: Any) -> str | None:
        return (self.blocked.get(object_type) or {}).get(str(jaggaer_id))

    def note(self, object_type: str, jaggaer_id: Any, reason: str | None) -> None:
        """Record (reason) or clear (None) that an object will not reach B1 in this run."""
        if reason is None:
            (self.blocked.get(object_type) or {}).pop(str(jaggaer_id), None)
        else:
            self.blocked.setdefault(object_type, {})[str(jaggaer_id)] = reason

    def crosswalk_entry(self, object_type: str, jaggaer_id: Any) -> CrosswalkEntry | None:
        found = (self.crosswalk.get(object_type) or {}).get(str(jaggaer_id))
        if found is None:
            return None
        if isinstance(found, str | int):
            return CrosswalkEntry(str(found))
        if isinstance(found, MappingABC):
            return CrosswalkEntry(str(found["b1_key"]), {str(k): int(v) for k, v in (found.get("line_map") or {}).items()})
        return CrosswalkEntry(str(found.b1_key), getattr(found, "line_map", None))

    def jaggaer_id(self, object_type: str, b1_key: Any) -> str | None:
        index = self._reverse.get(object_type)
        if index is None:
            index = {}
            for jid, entry in (self.crosswalk.get(object_type) or {}).items():
                b1 = entry if isinstance(entry, str | int) else entry["b1_key"] if isinstance(entry, MappingABC) else entry.b1_key
                index[str(b1)] = str(jid)
            self._reverse[object_type] = index
        return index.get(str(b1_key))

    def rule_table(self, name: str) -> RuleTable:
        try:
            return self.rule_tables[name]
        except KeyError:
            raise ConfigError(f"rule table {name!r} is not loaded (expected mappings/rules/{name}.csv)") from None


class _Located(Exception):
    """A record-level failure with the field it happened in."""

    def __init__(self, field_path: str, line: int | None, message: str):
        super().__init__(message)
        self.field_path, self.line, self.message = field_path, line, message


# ---------------------------------------------------------------- compiled structure


@dataclass
class Expr:
    source: str
    at: tuple[str | int, ...]
    line: int | None
    _compiled: Any = None

    def evaluate(self, variables: dict[str, Any]) -> Any:
        """Evaluate this expression alone (conditions, and locating the field of a failed block)."""
        if self._compiled is None:
            self._compiled = ENV.from_string(f"{{% set _r = ({self.source}) %}}")
        return _run(self._compiled, variables).get("_r")


@dataclass
class Const:
    value: Any


@dataclass
class Block:
    """One object level: `let` bindings then fields, evaluated in one template run."""

    at: tuple[str | int, ...]
    lets: list[tuple[str, Expr]]
    items: list[tuple[str, Any]]  # (name, Expr | Const | Block | ListNode | ForEach)
    when: Expr | None = None
    key: Expr | None = None
    template: Any = None
    var_of: dict[int, str] = field(default_factory=dict)  # id(Expr) -> template variable


@dataclass
class ListNode:
    at: tuple[str | int, ...]
    items: list[Any]  # Const | Expr | Block


@dataclass
class ForEach:
    at: tuple[str | int, ...]
    source: Expr
    var: str
    block: Block
    parent_var: str = ""  # variable of the parent block's template holding the evaluated source


CONFIG_KEYS = {"let", "fields", "when", "key"}


def _is_expr_text(value: Any) -> bool:
    return isinstance(value, str)


class _Builder:
    def __init__(self, lines: Lines):
        self.lines = lines

    def expr(self, source: Any, at: tuple[str | int, ...]) -> Expr:
        return Expr(str(source).strip(), at, line_of(self.lines, at))

    def value(self, raw: Any, at: tuple[str | int, ...]) -> Any:
        if isinstance(raw, MappingABC):
            if "for_each" in raw:
                var = raw.get("as", "item")
                block = self.block(raw.get("let"), raw.get("fields") or {}, at, (*at, "fields"), when=raw.get("when"), key=raw.get("key"))
                return ForEach(at, self.expr(raw["for_each"], (*at, "for_each")), str(var), block)
            if "fields" in raw and set(raw) <= CONFIG_KEYS:
                return self.block(raw.get("let"), raw["fields"], at, (*at, "fields"), when=raw.get("when"), key=raw.get("key"))
            return self.block(None, raw, at, at)
        if isinstance(raw, list):
            return ListNode(at, [self.value(item, (*at, i)) for i, item in enumerate(raw)])
        if _is_expr_text(raw):
            return self.expr(raw, at)
        return Const(raw)

    def block(
        self, lets: Any, fields: Any, at: tuple[str | int, ...], fields_at: tuple[str | int, ...], *, when: Any = None, key: Any = None
    ) -> Block:
        if not isinstance(fields, MappingABC):
            raise ConfigError(f"{'.'.join(map(str, fields_at))}: must be a mapping of property names to expressions")
        let_at = (*at, "let")
        block = Block(
            at=fields_at,
            lets=[(str(k), self.expr(v, (*let_at, k))) for k, v in (lets or {}).items()],
            items=[(str(k), self.value(v, (*fields_at, k))) for k, v in fields.items()],
            when=self.expr(when, (*at, "when")) if when is not None else None,
            key=self.expr(key, (*at, "key")) if key is not None else None,
        )
        _compile_block(block)
        return block


def _compile_block(block: Block) -> None:
    parts: list[str] = []
    for name, let in block.lets:
        parts.append(f"{{% set {name} = ({let.source}) %}}")
    n = 0
    if block.key is not None:
        block.var_of[id(block.key)] = "_k"
        parts.append(f"{{% set _k = ({block.key.source}) %}}")
    for _, node in block.items:
        expr = node if isinstance(node, Expr) else node.source if isinstance(node, ForEach) else None
        if expr is None:
            continue
        var = f"_f{n}"
        n += 1
        block.var_of[id(expr)] = var
        if isinstance(node, ForEach):
            node.parent_var = var
        parts.append(f"{{% set {var} = ({expr.source}) %}}")
    try:
        block.template = ENV.from_string("".join(parts))
    except TemplateSyntaxError:
        block.template = None  # located per expression by check/render (syntax errors are config errors)


def _walk_exprs(node: Any):
    """Every Expr under a node, in evaluation order."""
    if isinstance(node, Expr):
        yield node
    elif isinstance(node, Block):
        if node.when is not None:
            yield node.when
        for _, e in node.lets:
            yield e
        if node.key is not None:
            yield node.key
        for _, item in node.items:
            yield from _walk_exprs(item)
    elif isinstance(node, ForEach):
        yield node.source
        yield from _walk_exprs(node.block)
    elif isinstance(node, ListNode):
        for item in node.items:
            yield from _walk_exprs(item)


# ---------------------------------------------------------------- schema helpers


@functools.lru_cache(maxsize=32)
def _load_schema(path: str, mtime: float) -> tuple[dict[str, Any], Any]:
    schema = json.loads(Path(path).read_text())
    return schema, fastjsonschema.compile(schema)


def _max_lengths(schema: MappingABC) -> dict[str, Any]:
    """{prop: maxLength | nested dict for arrays/objects of objects}."""
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if "maxLength" in prop:
            out[name] = prop["maxLength"]
        elif prop.get("type") == "array" and isinstance(prop.get("items"), MappingABC) and prop["items"].get("properties"):
            out[name] = _max_lengths(prop["items"])
        elif prop.get("type") == "object" and prop.get("properties"):
            out[name] = _max_lengths(prop)
    return out


# ---------------------------------------------------------------- the mapping


class MappingFile:
    """A compiled mapping: `render(record, key)` -> RenderResult. Build with `load_mapping`."""

    def __init__(self, path: Path, data: dict[str, Any], lines: Lines, *, project_root: Path, api_version: str = "v2"):
        self.path = path
        self.name = path.stem
        self.lines = lines
        self.data = data
        self.target: str = data["target"]
        self.on_overflow: str = data.get("on_overflow", "fail")
        self.control_characters: str = data.get("control_characters", "strip")  # strip | refuse
        self.project_root = project_root
        b = _Builder(lines)
        ref = data.get("external_ref") or {}
        self.ref_field: str | None = ref.get("field")
        self.ref_expr = b.expr(ref["value"], ("external_ref", "value")) if ref.get("value") is not None else None
        xw = data.get("crosswalk") or {}
        self.crosswalk_type: str | None = xw.get("type")
        self.crosswalk_expr = b.expr(xw["key"], ("crosswalk", "key")) if xw.get("key") is not None else None
        self.wait_unless = [(b.expr(cond, ("wait_unless", cond)), str(reason)) for cond, reason in (data.get("wait_unless") or {}).items()]
        self.skip_unless = [(b.expr(cond, ("skip_unless", cond)), str(reason)) for cond, reason in (data.get("skip_unless") or {}).items()]
        self.prelude = b.block(data.get("let"), {}, (), ("fields",))  # top-level lets, visible to conditions
        self.root = b.block(None, data.get("fields") or {}, (), ("fields",))
        self.field_lengths: dict[str, int] = {str(k): int(v) for k, v in (data.get("field_lengths") or {}).items()}
        self.rule_names = sorted(rule_tables_used(self.all_exprs()))
        self.schema_path = payload_schema_path(self.target, project_root)
        self.schema, self._validate = _load_schema(str(self.schema_path), self.schema_path.stat().st_mtime)
        self.lengths = _max_lengths(self.schema)
        self.api_version = api_version
        self.lookups = Lookups(rule_tables=load_rule_tables(project_root / "mappings" / "rules", self.rule_names))
        self.version = mapping_version(path.read_bytes(), self.lookups.rule_tables)

    # -- introspection

    def all_exprs(self) -> list[Expr]:
        extra = [e for e, _ in self.wait_unless + self.skip_unless]
        extra += [e for e in (self.ref_expr, self.crosswalk_expr) if e is not None]
        return list(_walk_exprs(self.prelude)) + extra + list(_walk_exprs(self.root))

    def check_codes(self, reference_codes: MappingABC[str, Any]) -> list[Any]:
        """Problems of the rule tables this mapping uses, against B1's codes (run before a run)."""
        from engine.rules import check_rule_codes

        return check_rule_codes(self.lookups.rule_tables, reference_codes)

    def collection_keys(self) -> dict[str, bool]:
        """Top-level collections and whether their members carry a `key` (identity for diffs)."""
        return {name: node.block.key is not None for name, node in self.root.items if isinstance(node, ForEach)}

    # -- rendering

    def render(self, record: Any, key: str | None = None, *, lookups: Lookups | None = None) -> RenderResult:
        """Render one staged record. Never raises for a record-level problem: wait / quarantine instead.

        With a crosswalk type, the lookups also learn whether this object is on its way to B1
        (`Lookups.note`): a skipped or quarantined one blocks the records that depend on it."""
        lk = lookups or self.lookups
        result = self._render(record, key, lk, lookups is not None)
        if self.crosswalk_type and result.crosswalk_key is not None:
            if result.status == "ok":
                lk.note(self.crosswalk_type, result.crosswalk_key, None)
            elif result.status in ("skip", "quarantine"):
                what = "skipped" if result.status == "skip" else "quarantined"
                lk.note(self.crosswalk_type, result.crosswalk_key, f"{what}: {result.reason}")
        return result

    def _render(self, record: Any, key: str | None, lk: Lookups, per_run: bool) -> RenderResult:
        lookups = lk if per_run else None
        # a per-run Lookups: complete it with this mapping's rule tables
        if lookups is not None and any(name not in lookups.rule_tables for name in self.rule_names):
            lookups.rule_tables = {**lookups.rule_tables, **self.lookups.rule_tables}
        key = None if key is None else str(key)
        base = {"record": record, fn.LOOKUPS_VAR: lk, fn.API_VERSION_VAR: lk.api_version or self.api_version}
        early_key = None  # the crosswalk key, when the top-level lets suffice: named by skip / wait / quarantine
        try:
            if self.prelude.lets:
                base.update((k, v) for k, v in self._render_block(self.prelude, base, "")[1].items() if not k.startswith("_"))
            early_key = self._early_crosswalk_key(base)
            for expr, reason in self.skip_unless:
                if not self._eval_single(expr, base, "skip_unless"):
                    return RenderResult("skip", self.version, reason=reason, key=key, crosswalk_key=early_key)
            for expr, reason in self.wait_unless:
                if not self._eval_single(expr, base, "wait_unless"):
                    return RenderResult("wait", self.version, reason=reason, key=key, crosswalk_key=early_key)
            payload, top_vars = self._render_block(self.root, base, "")
            ref = crosswalk_key = None
            if self.ref_expr is not None:
                ref = self._eval_single(self.ref_expr, {**base, **top_vars}, "external_ref.value")
                ref = None if ref is None else self._clean_text(str(ref), "external_ref.value", self.ref_expr.line)
                if self.ref_field and ref is not None:
                    payload[self.ref_field] = ref
            if self.crosswalk_expr is not None:
                crosswalk_key = self._eval_single(self.crosswalk_expr, {**base, **top_vars}, "crosswalk.key")
                crosswalk_key = None if crosswalk_key is None else str(crosswalk_key)
            if fn.may_hold_control_characters(payload):
                payload = self._clean(payload, "")
            self._check_lengths(payload, self.lengths, "")
            self._validate_payload(payload)
        except fn.WaitSignal as exc:
            return RenderResult("wait", self.version, reason=f"{exc}", key=key, crosswalk_key=early_key)
        except _Located as exc:
            where = f"{self.path.name}:{exc.line}" if exc.line else self.path.name
            rec = f"record {key}: " if key is not None else ""
            return RenderResult("quarantine", self.version, reason=f"{where}: {exc.field_path}: {rec}{exc.message}", key=key,
                                crosswalk_key=early_key)
        return RenderResult("ok", self.version, payload=payload, key=key, external_ref=ref, crosswalk_key=crosswalk_key)

    def _early_crosswalk_key(self, base: dict[str, Any]) -> str | None:
        if self.crosswalk_expr is None:
            return None
        try:
            value = self.crosswalk_expr.evaluate(base)
        except Exception:  # noqa: BLE001 - it may need field values: known only once the record renders
            return None
        return None if value is None or isinstance(value, Undefined) else str(value)

    def _eval_single(self, expr: Expr, variables: dict[str, Any], label: str) -> Any:
        try:
            value = expr.evaluate(variables)
        except fn.WaitSignal:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a user expression is a record problem
            raise _Located(label, expr.line, _describe_error(exc, expr)) from None
        if isinstance(value, Undefined):
            raise _Located(label, expr.line, _describe_undefined(value, expr))
        return value

    def _render_block(self, block: Block, base: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if block.template is None:
            self._locate(block, base, where, None)
        try:
            values = _run(block.template, base)
        except fn.WaitSignal:
            raise
        except Exception as exc:  # noqa: BLE001
            self._locate(block, base, where, exc)
        out: dict[str, Any] = {}
        child_base: dict[str, Any] | None = None
        for name, node in block.items:
            path = f"{where}.{name}" if where else name
            if isinstance(node, Expr):
                value = values[block.var_of[id(node)]]
                if isinstance(value, Undefined):
                    raise _Located(path, node.line, _describe_undefined(value, node))
            elif isinstance(node, Const):
                value = node.value
            else:
                if child_base is None:
                    child_base = {**base, **{k: v for k, v in values.items() if not k.startswith("_f")}}
                value = self._render_nested(node, child_base, values, path)
            if value is not None:
                out[name] = value
        if block.key is not None:
            k = values.get("_k")
            if isinstance(k, Undefined) or k is None:
                raise _Located(f"{where}._key", block.key.line, "the line key renders to nothing")
            out["_key"] = str(k)
        return out, values

    def _render_nested(self, node: Any, base: dict[str, Any], parent_values: dict[str, Any], path: str) -> Any:
        if isinstance(node, Block):
            if node.when is not None and not self._eval_single(node.when, base, f"{path}.when"):
                return None
            return self._render_block(node, base, path)[0]
        if isinstance(node, ListNode):
            items = []
            for i, item in enumerate(node.items):
                if isinstance(item, Const):
                    items.append(item.value)
                elif isinstance(item, Expr):
                    items.append(self._eval_single(item, base, f"{path}[{i}]"))
                else:
                    rendered = self._render_nested(item, base, parent_values, f"{path}[{i}]")
                    if rendered is not None:
                        items.append(rendered)
            return items
        if isinstance(node, ForEach):
            source = parent_values[node.parent_var]
            if isinstance(source, Undefined):
                raise _Located(path, node.source.line, _describe_undefined(source, node.source))
            if source is None:
                return []
            if not isinstance(source, list | tuple):
                raise _Located(path, node.source.line, f"for_each: `{node.source.source}` is not a list")
            rendered_items = []
            for i, item in enumerate(source):
                item_base = {**base, node.var: item}
                label = f"{path}[line {i + 1}]"
                if node.block.when is not None and not self._eval_single(node.block.when, item_base, f"{label}.when"):
                    continue
                rendered_items.append(self._render_block(node.block, item_base, label)[0])
            keys = [r["_key"] for r in rendered_items if "_key" in r]
            if len(keys) != len(set(keys)):
                dup = sorted({k for k in keys if keys.count(k) > 1})
                raise _Located(path, node.block.key.line if node.block.key else None, f"duplicate line keys {dup}")
            return rendered_items
        raise TypeError(node)  # pragma: no cover

    def _locate(self, block: Block, base: dict[str, Any], where: str, exc: Exception | None) -> None:
        """Re-run a failed block expression by expression to name the failing field; always raises."""
        variables = dict(base)
        steps: list[tuple[str, Expr, str | None]] = [(f"let.{n}", e, n) for n, e in block.lets]
        if block.key is not None:
            steps.append(("_key", block.key, None))
        for name, node in block.items:
            if isinstance(node, Expr):
                steps.append((name, node, None))
            elif isinstance(node, ForEach):
                steps.append((f"{name}.for_each", node.source, None))
        for label, expr, bind in steps:
            path = f"{where}.{label}" if where else label
            try:
                value = expr.evaluate(variables)
            except fn.WaitSignal:
                raise
            except TemplateSyntaxError as err:
                raise ConfigError(f"{self.path}:{expr.line}: {path}: invalid expression `{expr.source}`: {err.message}") from None
            except Exception as err:  # noqa: BLE001
                raise _Located(path, expr.line, _describe_error(err, expr)) from None
            if bind:
                variables[bind] = value
        raise _Located(where or "(mapping)", line_of(self.lines, block.at), f"{type(exc).__name__}: {exc}" if exc else "cannot render")

    def _clean(self, value: Any, path: str) -> Any:
        """`value` with control characters stripped from every string (new containers: a rendered value
        may be the staged record's own); with `control_characters: refuse` the first one quarantines."""
        if isinstance(value, str):
            return self._clean_text(value, path)
        if isinstance(value, MappingABC):
            return {k: self._clean(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(item, f"{path}[{item['_key']}]" if isinstance(item, dict) and "_key" in item else f"{path}[{i}]")
                    for i, item in enumerate(value)]
        return value

    def _clean_text(self, value: str, path: str, line: int | None = None) -> str:
        """One rendered string without its control characters, or `_Located` when the mapping refuses them."""
        if self.control_characters != "refuse":
            return fn.strip_control_characters(value)
        found = fn.describe_control_character(value)
        if found is None:
            return value
        raise _Located(
            path, line if line is not None else self._line_for_path(path),
            f"control character {found} in {value[:40]!r}; SAP B1 does not take it: remove it at the source, "
            "or set `control_characters: strip` in the mapping",
        )

    def _check_lengths(self, payload: dict[str, Any], lengths: dict[str, Any], where: str) -> None:
        for name, value in list(payload.items()):
            limit = lengths.get(name)
            if limit is None and not where:
                limit = self.field_lengths.get(name)
            path = f"{where}.{name}" if where else name
            if isinstance(limit, dict):
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        if isinstance(item, dict):
                            label = f"[{item['_key']}]" if "_key" in item else f"[{i}]"
                            self._check_lengths(item, limit, f"{path}{label}")
                elif isinstance(value, dict):
                    self._check_lengths(value, limit, path)
            elif isinstance(limit, int) and isinstance(value, str) and len(value) > limit:
                if self.on_overflow == "truncate":
                    payload[name] = value[:limit]
                else:
                    raise _Located(
                        path, self._line_for_path(path),
                        f"value is {len(value)} characters, longer than SAP B1's {limit} ({value[:40]!r}…); "
                        "shorten it at the source, or set `on_overflow: truncate` in the mapping",
                    )

    def _validate_payload(self, payload: dict[str, Any]) -> None:
        try:
            self._validate(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            path = _schema_path(exc, payload)
            message = exc.message.replace(exc.name, "value", 1) if exc.name else exc.message
            raise _Located(path, self._line_for_path(path), f"{message} (schema {self.schema_path.name})") from None

    def _line_for_path(self, path: str) -> int | None:
        """Mapping-file line of a payload field path like `DocumentLines[3].ItemDescription`."""
        at: tuple[str | int, ...] = ("fields",)
        for part in path.replace("]", "").split("."):
            name = part.split("[")[0]
            if at != ("fields",) and (*at, "fields") in self.lines:
                at = (*at, "fields")
            at = (*at, name)
        return line_of(self.lines, at) if at in self.lines else line_of(self.lines, at[:2])


def _schema_path(exc: fastjsonschema.JsonSchemaValueException, payload: dict[str, Any]) -> str:
    parts = list(exc.path or [])[1:]
    out = ""
    obj: Any = payload
    for p in parts:
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit() and isinstance(obj, list)):
            idx = int(p)
            item = obj[idx] if isinstance(obj, list) and idx < len(obj) else None
            out += f"[{item['_key']}]" if isinstance(item, dict) and "_key" in item else f"[{idx}]"
            obj = item
        else:
            out += f".{p}" if out else str(p)
            obj = obj.get(p) if isinstance(obj, dict) else None
    return out or "(payload)"


def _describe_undefined(value: Undefined, expr: Expr) -> str:
    msg = getattr(value, "_undefined_message", None) or "undefined"
    return f"source value missing in `{expr.source}`: {msg} (add `| default(...)` if it is optional)"


def _describe_error(exc: Exception, expr: Expr) -> str:
    if isinstance(exc, fn.RejectSignal):
        return str(exc)
    if isinstance(exc, UndefinedError):
        return f"source value missing in `{expr.source}`: {exc.message} (add `| default(...)` if it is optional)"
    if isinstance(exc, TemplateSyntaxError):
        return f"invalid expression `{expr.source}`: {exc.message}"
    return f"`{expr.source}` failed: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- versions and loading


def rule_tables_used(exprs: list[Expr]) -> set[str]:
    """Names of the rule tables called with a literal name: `rule('gl_accounts', ...)`."""
    names: set[str] = set()
    for expr in exprs:
        try:
            tree = ENV.parse(f"{{{{ {expr.source} }}}}")
        except TemplateSyntaxError:
            continue
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == "rule" and call.args and isinstance(call.args[0], nodes.Const):
                names.add(str(call.args[0].value))
    return names


def mapping_version(mapping_bytes: bytes, rule_tables: MappingABC[str, RuleTable]) -> str:
    """Content hash of the mapping file and the rule tables it uses (12 hex digits)."""
    h = hashlib.sha256(mapping_bytes)
    for name in sorted(rule_tables):
        h.update(f"\0{name}\0{rule_tables[name].content_hash}".encode())
    return h.hexdigest()[:12]


def find_project_root(path: Path) -> Path:
    """The folder holding `mappings/` for a mapping file (its grand-parent for mappings/x.yaml)."""
    for parent in path.resolve().parents:
        if parent.name == "mappings":
            return parent.parent
    return path.resolve().parent


def load_mapping(path: str | Path, *, project_root: Path | None = None, api_version: str = "v2") -> MappingFile:
    """Load, check and compile a mapping file; ConfigError (with `file:line: field: message`) when invalid."""
    from engine.mapping.check import check_mapping_data  # local: check imports core

    path = Path(path)
    data, lines = load_yaml_with_lines(path)
    root = project_root or find_project_root(path)
    problems = check_mapping_data(path, data, lines, project_root=root, target_entity=None)
    if problems:
        raise ConfigError("mapping has problems:\n" + "\n".join(f"  {p}" for p in problems))
    return MappingFile(path, data, lines, project_root=root, api_version=api_version)


# ---------------------------------------------------------------- helpers for the loader and the plan


def strip_reserved(payload: Any) -> Any:
    """A copy of a payload without the engine's reserved `_` keys (`_key`, `_base`): what B1 receives."""
    if isinstance(payload, dict):
        return {k: strip_reserved(v) for k, v in payload.items() if not k.startswith(RESERVED_PREFIX)}
    if isinstance(payload, list):
        return [strip_reserved(v) for v in payload]
    return payload


def base_links(payload: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(index in DocumentLines, `_base` link) for every invoice line that copies from a PO line."""
    return [(i, line["_base"]) for i, line in enumerate(payload.get("DocumentLines") or []) if "_base" in line]


def deep_copy(payload: Any) -> Any:
    return copy.deepcopy(payload)
