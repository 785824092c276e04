"""YAML loading that remembers the line of every key, so problems can say `file:line: field`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError

Lines = dict[tuple[str | int, ...], int]


def load_yaml_with_lines(path: Path) -> tuple[Any, Lines]:
    """Parse a YAML file; return (data, {path-tuple: 1-based line of that key or item})."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    lines: Lines = {}
    if node is None:
        return None, lines
    return _convert(node, (), lines), lines


def _convert(node: yaml.Node, at: tuple[str | int, ...], lines: Lines) -> Any:
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader.construct_object(_loader(), key_node)  # scalars only in our files
            lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, (*at, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*at, i), lines) for i, item in enumerate(node.value)]
    return _loader().construct_object(node, deep=True)


_LOADER: yaml.SafeLoader | None = None


def _loader() -> yaml.SafeLoader:
    global _LOADER
    if _LOADER is None:
        _LOADER = yaml.SafeLoader("")
    return _LOADER


def line_of(lines: Lines, at: tuple[str | int, ...]) -> int | None:
    """The line of `at`, or of its nearest ancestor that has one."""
    while at:
        if at in lines:
            return lines[at]
        at = at[:-1]
    return lines.get(())
