"""YAML loading that remembers the line of every key, so problems can say `file:line: field`.

A thin view over `engine.yamlfile` (the one loader of every ml-connector file) in the shape the
mapping modules use: `(data, {path: line})`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.yamlfile import load_yaml

Lines = dict[tuple[str | int, ...], int]


def load_yaml_with_lines(path: Path) -> tuple[Any, Lines]:
    """Parse a YAML file; return (data, {path-tuple: 1-based line of that key or item}).

    Raises ConfigError (`file:line:col: message`) for an unreadable, non-UTF-8 or invalid file,
    YAML aliases, and duplicate keys."""
    doc = load_yaml(path)
    doc.refuse_duplicates()
    return doc.data, {**doc.lines, **doc.key_lines}


def line_of(lines: Lines, at: tuple[str | int, ...]) -> int | None:
    """The line of `at`, or of its nearest ancestor that has one."""
    while at:
        if at in lines:
            return lines[at]
        at = at[:-1]
    return lines.get(())
