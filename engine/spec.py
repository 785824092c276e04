"""Pipeline specs: load `pipelines/*.yaml`, validate them against `schemas/pipeline.schema.json`,
and check the references between a project's files — every problem at once, as `file:line: field: message`.

The JSON Schema is the one source of truth for the format (editors use it through the YAML language
server); this module adds what a schema cannot say: references to other files and pipelines.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from engine.kinds import JaggaerSource, Source, Target, parse_source, parse_target
from engine.problems import Problem
from engine.schemas import format_schema_path, packaged_dir
from engine.yamlfile import DUPLICATE_KEY, YamlFileError, load_yaml
from engine.yamlfile import dotted as _dotted

# The engine's format schemas, shipped in the package (engine.schemas), never the repository's `schemas/`.
SCHEMAS_DIR = packaged_dir()
PIPELINE_SCHEMA = format_schema_path("pipeline")
PROJECT_FILE = "ml-connector.yaml"

Path_ = tuple[str | int, ...]


# --------------------------------------------------------------------------- YAML with line numbers


@dataclass
class Located:
    """A YAML document with the line of every value and every mapping key (1-based)."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    key_lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Iterable[str | int]) -> int | None:
        """Line of the value at `path`, or of its nearest existing parent."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def key_line(self, path: Iterable[str | int]) -> int | None:
        path = tuple(path)
        return self.key_lines.get(path) or self.line(path)


def load_located(path: Path, *, display: str | None = None) -> tuple[Located | None, list[Problem]]:
    """Parse a YAML file keeping line numbers (engine.yamlfile); duplicate keys are reported, not
    silently dropped. An unreadable or unsafe file is one problem and no document."""
    name = display or str(path)
    try:
        doc = load_yaml(path, display=name)
    except YamlFileError as exc:
        where = f" (column {exc.column})" if exc.column else ""
        return None, [Problem(name, exc.line, "", exc.detail + where)]
    problems = [Problem(name, line, _dotted(at), DUPLICATE_KEY) for at, line in doc.duplicates]
    return Located(doc.data, doc.lines, doc.key_lines), problems


def closest(value: Any, choices: Iterable[str]) -> str | None:
    """The choice closest to `value` (a near spelling, or the same word in another case), if any."""
    if not isinstance(value, str):
        return None
    choices = list(choices)
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = {c.lower(): c for c in choices}
    return lowered.get(value.lower())


def did_you_mean(value: Any, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a close choice exists, else ``."""
    close = closest(value, choices)
    return f" (did you mean '{close}'?)" if close else ""


# --------------------------------------------------------------------------- JSON Schema -> problems


@functools.cache
def load_schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def _validator(path: Path) -> jsonschema.protocols.Validator:
    schema = load_schema(path)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def schema_problems(located: Located, schema_path: Path, name: str) -> list[Problem]:
    """Validate a located document against a JSON Schema; one clear problem per error."""
    problems = []
    errors = sorted(_validator(schema_path).iter_errors(located.data), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        problems.extend(_describe(error, located, name))
    return _dedupe(problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if (p.line, p.field, p.message) not in seen:
            seen.add((p.line, p.field, p.message))
            out.append(p)
    return out


def _describe(error: jsonschema.ValidationError, loc: Located, name: str) -> list[Problem]:
    path = tuple(error.absolute_path)
    field_ = _dotted(path)
    value = error.instance
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [Problem(name, loc.key_line(path), _dotted(path + (missing,)), "required field is missing")]
    if kind == "additionalProperties":
        allowed = list((schema.get("properties") or {}).keys())
        extras = [k for k in value if k not in allowed] if isinstance(value, dict) else []
        return [
            Problem(name, loc.key_line(path + (k,)), _dotted(path + (k,)), f"unknown field '{k}'{did_you_mean(k, allowed)}")
            for k in extras
        ]
    if kind == "enum":
        choices = [str(c) for c in error.validator_value]
        if schema.get("description", "").startswith("A Service Layer entity set"):
            what = "is not a Service Layer entity"
        elif len(choices) <= 6:
            what = "must be one of " + ", ".join(f"'{c}'" for c in choices)
        else:
            what = "is not an allowed value"
        return [Problem(name, loc.line(path), field_, f"{value!r} {what}{did_you_mean(value, choices)}")]
    if kind == "const":
        return [Problem(name, loc.line(path), field_, f"must be {error.validator_value!r}, not {value!r}")]
    if kind == "type":
        return [Problem(name, loc.line(path), field_,
                        f"expected {_type_words(error.validator_value)}, got {_json_type(value)}")]
    if kind == "pattern":
        hint = schema.get("description", "")
        return [Problem(name, loc.line(path), field_,
                        f"{value!r} is not valid" + (f": {hint}" if hint else f" (pattern {error.validator_value})"))]
    if kind in ("anyOf", "oneOf"):
        return [Problem(name, loc.line(path), field_, _any_of_message(error, value))]
    if kind == "propertyNames":
        return [Problem(name, loc.key_line(path), field_, f"invalid name: {error.message}")]
    return [Problem(name, loc.line(path), field_, error.message)]


def _any_of_message(error: jsonschema.ValidationError, value: Any) -> str:
    subschemas = error.validator_value
    refs = [s.get("$ref", "") for s in subschemas if isinstance(s, dict)]
    if isinstance(value, dict) and "env" in value:
        for sub in error.context or []:
            if sub.validator == "additionalProperties":
                extra = [k for k in value if k not in ("env", "default")]
                return f"unknown key in an environment reference: {', '.join(map(repr, extra))} (use {{env: NAME, default: ...}})"
            if sub.validator == "pattern":
                return f"environment variable name {value.get('env')!r} must be UPPER_SNAKE_CASE"
    if any(r.endswith("/env") for r in refs):
        wanted = {"#/$defs/str": "a non-empty string", "#/$defs/int": "a positive integer",
                  "#/$defs/num": "a non-negative number", "#/$defs/bool": "true or false"}
        what = next((wanted[r] for r in wanted if r in json.dumps(subschemas)), "a value")
        return f"expected {what} or {{env: NAME, default: ...}}, got {value!r}"
    return error.message


def _type_words(t: Any) -> str:
    words = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "true or false", "null": "null"}
    if isinstance(t, list):
        return " or ".join(words.get(x, str(x)) for x in t)
    return words.get(t, str(t))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    return f"the string {value!r}"


# --------------------------------------------------------------------------- pipelines


@dataclass(frozen=True)
class PairSettings:
    """`pair`, `conflicts`, `owned_by` of a SAP B1 -> JAGGAER pipeline syncing fields both ways with the
    JAGGAER -> SAP B1 pipeline `with` (resolved into an `engine.pairs.Pair`)."""

    with_pipeline: str
    fields: Mapping[str, str]  # JAGGAER field -> SAP B1 field
    conflicts: str | Mapping[str, Any] | None = None  # a policy, or {default, fields: {name: policy}}
    owned_by: Mapping[str, str] = field(default_factory=dict)  # field (either side's name) -> jaggaer | b1


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file, typed: its source and target are of a connection kind (`engine.kinds`)."""

    name: str
    path: Path
    source: Source
    mapping: str  # the mapping file, relative to the project root
    target: Target
    depends_on: tuple[str, ...] = ()
    description: str = ""
    schedule: Mapping[str, Any] | None = None  # `serve`'s cadence: {every} or {cron, timezone} (engine.serve.scheduler)
    pair: PairSettings | None = None

    @property
    def connections(self) -> set[str]:
        return {self.source.connection, self.target.connection}

    @property
    def reads_with(self) -> tuple[str, ...]:
        """Pipelines a run of this one needs read too: its dependencies and its pair's other half."""
        return self.depends_on + ((self.pair.with_pipeline,) if self.pair else ())


def pipeline_files(root: Path) -> list[Path]:
    return sorted((root / "pipelines").glob("*.yaml")) + sorted((root / "pipelines").glob("*.yml"))


def parse_pipeline_file(path: Path, root: Path) -> tuple[Located | None, list[Problem]]:
    """A pipeline file's YAML with line numbers (None when it cannot be read or parsed) and its problems."""
    return load_located(path, display=display_path(path, root))


def load_pipeline(path: Path, root: Path, parsed: tuple[Located | None, list[Problem]] | None = None,
                  ) -> tuple[Pipeline | None, list[Problem], Located | None]:
    """Load one pipeline file (or its `parsed` YAML); the pipeline is None when it has schema problems."""
    display = display_path(path, root)
    located, problems = parsed if parsed is not None else parse_pipeline_file(path, root)
    problems = list(problems)
    if located is None:
        return None, problems, None
    if not isinstance(located.data, dict):
        return None, problems + [Problem(display, 1, "", "a pipeline file must be a mapping")], located
    problems += schema_problems(located, PIPELINE_SCHEMA, display)
    data = located.data
    if isinstance(data.get("name"), str) and data["name"] != path.stem:
        problems.append(Problem(display, located.line(("name",)), "name",
                                f"'{data['name']}' must equal the file name '{path.stem}'"))
    if problems:
        return None, problems, located
    return pipeline_from_yaml(data, path), problems, located


def pipeline_from_yaml(data: Mapping[str, Any], path: Path) -> Pipeline:
    """A `Pipeline` from a document that passed the pipeline schema."""
    pair = data.get("pair")
    settings = PairSettings(pair["with"], dict(pair["fields"]), data.get("conflicts"),
                            dict(data.get("owned_by") or {})) if isinstance(pair, dict) else None
    return Pipeline(
        name=data["name"], path=path, source=parse_source(data["source"]), mapping=data["mapping"],
        target=parse_target(data["target"]), depends_on=tuple(data.get("depends_on") or ()),
        description=data.get("description", ""), schedule=data.get("schedule"), pair=settings,
    )


def display_path(path: Path, root: Path) -> str:
    """A file's name in messages: relative to the project root when it is inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def reference_problems(pipeline: Pipeline, loc: Located, root: Path, by_stem: Mapping[str, Path], project: Any,
                       check_mappings: bool = True) -> list[Problem]:
    """What a pipeline names outside its file: pipelines, connections (of the right kind), its mapping, its
    source schema and the paths in it."""
    spec = pipeline
    name = display_path(spec.path, root)
    out: list[Problem] = []
    for i, dep in enumerate(spec.depends_on):
        if dep == spec.name:
            out.append(Problem(name, loc.line(("depends_on", i)), f"depends_on[{i}]", "a pipeline cannot depend on itself"))
        elif dep not in by_stem:
            out.append(Problem(name, loc.line(("depends_on", i)), f"depends_on[{i}]",
                               f"no pipeline '{dep}'{did_you_mean(dep, by_stem)}"))
    if project is not None:
        for part, block in (("source", spec.source), ("target", spec.target)):
            conn, want = block.connection, block.kind
            field_ = f"{part}.connection"
            if conn not in project.connections:
                out.append(Problem(name, loc.line((part, "connection")), field_,
                                   f"no connection '{conn}' in {PROJECT_FILE}{did_you_mean(conn, project.connections)}"))
            elif project.connections[conn].get("kind") != want:
                out.append(Problem(name, loc.line((part, "connection")), field_,
                                   f"connection '{conn}' is of kind '{project.connections[conn].get('kind')}', "
                                   f"this {part} needs a '{want}' connection"))
    mapping = root / spec.mapping
    if not mapping.is_file():
        out.append(Problem(name, loc.line(("mapping",)), "mapping", f"file {spec.mapping} does not exist"))
    elif check_mappings:
        out += _mapping_problems(mapping, getattr(spec.target, "entity", None))
    if isinstance(spec.source, JaggaerSource):
        out += _source_schema_problems(spec.source, loc, root, name)
    if spec.schedule is not None:
        out += _schedule_problems(spec.schedule, loc, name)
    return out


def _schedule_problems(schedule: Mapping[str, Any], loc: Located, name: str) -> list[Problem]:
    """`serve`'s own check of a `schedule:` block (a duration, a crontab APScheduler accepts, a known zone),
    so that `validate` reports what `serve` would refuse."""
    from engine.serve.scheduler import ScheduleError, parse_schedule

    try:
        parse_schedule(schedule)
    except ScheduleError as exc:
        where, _, message = str(exc).partition(": ")
        return [Problem(name, loc.line(tuple(where.split("."))), where, message)]
    return []


def _source_schema_problems(source: JaggaerSource, loc: Located, root: Path, name: str) -> list[Problem]:
    schema_file = root / source.schema
    line = loc.line(("source", "schema"))
    if not schema_file.is_file():
        return [Problem(name, line, "source.schema", f"file {source.schema} does not exist")]
    try:
        compile_schema(schema_file)
    except (ValueError, OSError) as exc:
        return [Problem(name, line, "source.schema", f"{source.schema} is not a usable JSON Schema: {exc}")]
    return _source_path_problems(source, loc, root, name)


# --------------------------------------------------------------------------- source paths in schemas


def list_schema_path(record_schema: Path) -> Path:
    """The list answer's schema next to a record schema: `x.schema.json` -> `x-list.schema.json`."""
    base = record_schema.name.removesuffix(".json").removesuffix(".schema")
    return record_schema.with_name(f"{base}-list.schema.json")


def _source_path_problems(src: JaggaerSource, loc: Located, root: Path, name: str) -> list[Problem]:
    """`records` must name a list in the list answer's schema (when the project has one);
    `primary_key` and `cursor.field` must name a value in its items (else in the record schema)."""
    out: list[Problem] = []
    item: _SchemaAt | None = None
    list_file = list_schema_path(root / src.schema)
    if list_file.is_file():
        envelope = _SchemaAt.load(list_file)
        if envelope is None:
            return [Problem(name, loc.line(("source", "records")), "source.records",
                            f"{display_path(list_file, root)} is not valid JSON")]
        found, message = _resolve(envelope, src.records, root, want="array")
        if message:
            out.append(Problem(name, loc.line(("source", "records")), "source.records", message))
        item = found.items() if found else None
    if item is None:  # no list schema, or `records` did not resolve: the record schema has them too
        item = _SchemaAt.load(root / src.schema)
    if item is None:
        return out
    for at, path in ((("primary_key",), src.primary_key), (("cursor", "field"), src.cursor.field)):
        _, message = _resolve(item, path, root, want="value")
        if message:
            out.append(Problem(name, loc.line(("source", *at)), "source." + ".".join(at), message))
    return out


@dataclass(frozen=True)
class _SchemaAt:
    """A (sub)schema and the file it lives in; `$ref`s resolve within that file or to a sibling file."""

    schema: dict[str, Any]
    file: Path
    document: dict[str, Any]

    @staticmethod
    def load(path: Path) -> _SchemaAt | None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return _SchemaAt(document, path, document) if isinstance(document, dict) else None

    def deref(self, hops: int = 20) -> _SchemaAt | None:
        """Follow `$ref` (`#/$defs/x`, `other.schema.json`, `other.schema.json#/$defs/x`); None if unresolvable."""
        node: _SchemaAt | None = self
        while node is not None and isinstance(node.schema.get("$ref"), str) and hops:
            file_part, _, pointer = node.schema["$ref"].partition("#")
            target = node if not file_part else _SchemaAt.load(node.file.parent / file_part)
            node = target.at_pointer(pointer) if target else None
            hops -= 1
        return node if node is not None and hops else None

    def at_pointer(self, pointer: str) -> _SchemaAt | None:
        value: Any = self.document
        for part in filter(None, pointer.split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            value = value.get(part) if isinstance(value, dict) else None
        return _SchemaAt(value, self.file, self.document) if isinstance(value, dict) else None

    def branches(self) -> list[_SchemaAt]:
        """This schema and its allOf/anyOf/oneOf branches, dereferenced (None: something unresolvable)."""
        out, todo, seen = [], [self], set()
        while todo:
            node = todo.pop().deref()
            if node is None:
                return []
            if id(node.schema) in seen:  # a branch that refers back to itself adds nothing
                continue
            seen.add(id(node.schema))
            out.append(node)
            todo += [_SchemaAt(b, node.file, node.document) for k in ("allOf", "anyOf", "oneOf")
                     for b in node.schema.get(k, []) if isinstance(b, dict)]
        return out

    def properties(self) -> tuple[dict[str, _SchemaAt], bool]:
        """The named properties, and whether other names may occur too: an unresolvable schema, one
        that says nothing about properties, or one allowing additional or pattern properties."""
        names: dict[str, _SchemaAt] = {}
        branches = self.branches()
        constraining = [n for n in branches if {"properties", "additionalProperties", "patternProperties"} & n.schema.keys()]
        for node in constraining:
            for key, sub in (node.schema.get("properties") or {}).items():
                if isinstance(sub, dict):
                    names.setdefault(key, _SchemaAt(sub, node.file, node.document))
        is_open = not constraining or any(
            n.schema.get("additionalProperties", True) is not False or n.schema.get("patternProperties") for n in constraining)
        return names, is_open

    def types(self) -> set[str]:
        found: set[str] = set()
        for node in self.branches():
            t = node.schema.get("type")
            found |= {t} if isinstance(t, str) else set(t) if isinstance(t, list) else set()
        return found

    def items(self) -> _SchemaAt | None:
        for node in self.branches():
            if isinstance(node.schema.get("items"), dict):
                return _SchemaAt(node.schema["items"], node.file, node.document)
        return None


def _resolve(start: _SchemaAt, dotted_path: str, root: Path, *, want: str) -> tuple[_SchemaAt | None, str | None]:
    """Follow a dotted path through object properties; (schema found, None) or (None/partial, problem).
    An open schema (additional properties allowed) cannot refute a name: the rest is not checked."""
    node, parts = start, dotted_path.split(".")
    for i, part in enumerate(parts):
        where, types = display_path(node.file, root), node.types()
        if i and types and "object" not in types:
            what = "a list" if "array" in types else "a value"
            return None, f"{dotted_path!r} is not in {where} ('{'.'.join(parts[:i])}' is {what}, not a mapping)"
        names, is_open = node.properties()
        if part in names:
            node = names[part]
            continue
        if is_open:
            return None, None
        guess = closest(part, names)
        hint = ""
        if guess:
            fixed = ".".join([*parts[:i], guess, *parts[i + 1:]])
            _, problem = _resolve(start, fixed, root, want=want)
            hint = f" (did you mean '{fixed if problem is None else '.'.join([*parts[:i], guess])}'?)"
        return None, f"{dotted_path!r} is not in {where}{hint}"
    types = node.types()
    if want == "array" and types and "array" not in types:
        return None, f"{dotted_path!r} in {display_path(node.file, root)} is not a list"
    if want == "value" and types and types <= {"object", "array"}:
        return None, f"{dotted_path!r} in {display_path(node.file, root)} is {'a mapping' if 'object' in types else 'a list'}, not a value"
    return node, None


@functools.cache
def compile_schema(path: Path) -> Callable[[Any], None]:
    """A compiled validator for a record schema: `validate(record)` raises RecordInvalid with the
    path and reason. Raises ValueError if the schema itself is unusable.

    jsonschema-rs compiles the schema once (Rust); ~20 µs per purchase order with lines here, against
    ~140 µs for fastjsonschema's generated Python and several times that for plain jsonschema."""
    import jsonschema_rs

    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
        validator = jsonschema_rs.validator_for(schema)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        raise ValueError(str(exc).splitlines()[0]) from None

    def validate(record: Any) -> None:
        try:
            validator.validate(record)
        except jsonschema_rs.ValidationError as exc:
            where = _dotted(exc.instance_path) or "(record)"
            raise RecordInvalid(f"{where}: {exc.message}") from None

    return validate


class RecordInvalid(ValueError):
    """A record does not fit its JSON Schema; the message names the field and the reason."""


def _mapping_problems(path: Path, target_entity: str | None) -> list[Problem]:
    """Delegate to `engine.mapping.check_mapping_file` when it exists (it is built separately)."""
    try:
        module = importlib.import_module("engine.mapping")
    except ImportError:
        return []
    check = getattr(module, "check_mapping_file", None)
    if check is None:
        return []
    return list(check(path, target_entity=target_entity))


def iter_problems_sorted(problems: Iterable[Problem]) -> Iterator[Problem]:
    yield from sorted(problems, key=lambda p: (p.file, p.line or 0, p.field))
