"""The one YAML loader for every ml-connector file: line numbers kept, hostile input refused.

Every YAML file the engine reads (the project file, pipelines, mappings, mapping fixtures) goes
through `load_yaml`. It

- decodes UTF-8 strictly (a BOM is fine) and names the first bad byte;
- refuses aliases (`*name`) while composing, before anything is expanded, so an alias bomb
  ("billion laughs") or a self-referencing structure costs nothing: our files never need them;
- refuses merge keys (`<<`), tagged collections and structures nested deeper than `MAX_DEPTH`;
- records the 1-based line of every value and every mapping key, and every duplicate key
  (the later value wins, as in YAML; callers report or refuse them).

Problems with the file itself raise `YamlFileError` (a ConfigError): `file:line:col: message`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError

KeyPath = tuple[str | int, ...]
MAX_DEPTH = 100
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOM = b"\xef\xbb\xbf"
DUPLICATE_KEY = "duplicate key (the later value would silently win)"


class YamlFileError(ConfigError):
    """A YAML file that cannot be read as an ml-connector file; `file:line:col: detail`."""

    def __init__(self, file: str, detail: str, line: int | None = None, column: int | None = None) -> None:
        self.file, self.detail, self.line, self.column = file, detail, line, column
        where = file + "".join(f":{n}" for n in (line, column) if n is not None)
        super().__init__(f"{where}: {detail}")


@dataclass
class YamlDoc:
    """A parsed YAML document with the line of every value (`lines`) and of every mapping key
    (`key_lines`), keyed by the path of the value (`("source", "cursor", "field")`, `("items", 0)`)."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    key_lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[tuple[KeyPath, int]] = field(default_factory=list)

    def duplicate_messages(self) -> list[str]:
        """One `file:line: key.path: duplicate key ...` line per duplicate key."""
        return [f"{self.file}:{line}: {dotted(path)}: {DUPLICATE_KEY}" for path, line in self.duplicates]

    def refuse_duplicates(self) -> None:
        """Raise ConfigError naming every duplicate key, if there is any."""
        if self.duplicates:
            raise ConfigError("\n".join(self.duplicate_messages()))


def load_yaml(path: str | Path, *, display: str | None = None) -> YamlDoc:
    """Read and parse one YAML file (see the module docstring); `display` names it in messages."""
    name = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise YamlFileError(name, f"cannot read file: {exc.strerror or exc}") from None
    return parse_yaml(raw, name)


def parse_yaml(raw: bytes | str, name: str) -> YamlDoc:
    """Parse YAML bytes (strict UTF-8) or text; `name` is the file named in messages."""
    text = decode_utf8(raw, name) if isinstance(raw, bytes) else raw
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        doc = YamlDoc(name, None)
        if node is not None:
            doc.data = _build(node, (), doc, loader)
        return doc
    except _Refused as exc:
        raise YamlFileError(name, str(exc.problem), *_position(exc.problem_mark)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = f"invalid YAML: {exc.problem or exc.context or exc}"
        if exc.context and exc.problem and exc.context_mark and exc.problem_mark:
            detail += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise YamlFileError(name, detail, *_position(mark)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlFileError(name, f"invalid YAML: unacceptable character #x{exc.character:04x}",
                            line, column) from None
    except yaml.YAMLError as exc:
        raise YamlFileError(name, f"invalid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def decode_utf8(raw: bytes, name: str) -> str:
    """Strict UTF-8 (an initial BOM is dropped); YamlFileError naming the first bad byte."""
    start = len(_BOM) if raw.startswith(_BOM) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise YamlFileError(name, f"not UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset}); "
                                  "save the file as UTF-8") from None


def dotted(path: Iterable[str | int]) -> str:
    """`("a", 0, "b")` -> `a[0].b`."""
    out = ""
    for part in path:
        index = isinstance(part, int) and not isinstance(part, bool)
        out += f"[{part}]" if index else (f".{part}" if out else str(part))
    return out


def _position(mark: Any) -> tuple[int | None, int | None]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (None, None)


class _Refused(yaml.MarkedYAMLError):
    """Raised while composing; turned into a YamlFileError like any syntax error."""

    def __init__(self, mark: Any, problem: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses aliases and deep nesting before building anything."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"YAML aliases (*{event.anchor}) are not supported in ml-connector files")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _build(node: yaml.Node, path: KeyPath, doc: YamlDoc, loader: _Loader) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        _plain_tag(node, _MAP_TAG)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _key(key_node, loader)
            at = (*path, key)
            if key in out:
                doc.duplicates.append((at, key_node.start_mark.line + 1))
            doc.key_lines[at] = key_node.start_mark.line + 1
            out[key] = _build(value_node, at, doc, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        _plain_tag(node, _SEQ_TAG)
        return [_build(item, (*path, i), doc, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node)


def _key(node: yaml.Node, loader: _Loader) -> Any:
    if node.tag == _MERGE_TAG:
        raise _Refused(node.start_mark, "YAML merge keys (<<) are not supported in ml-connector files")
    if not isinstance(node, yaml.ScalarNode):
        raise _Refused(node.start_mark, "a mapping key must be a plain value, not a list or mapping")
    return loader.construct_object(node)


def _plain_tag(node: yaml.Node, default: str) -> None:
    if node.tag != default:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _Refused(node.start_mark, f"YAML tag {tag} is not supported in ml-connector files")
