"""A throw-away mapping project for the mapping, plan and load tests: mappings/, mappings/rules/
(schemas come from the repository). tests/engine/spec has its own `project` fixture."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


class Project:
    def __init__(self, root: Path):
        self.root = root
        (root / "mappings" / "rules").mkdir(parents=True)

    def mapping(self, name: str, text: str) -> Path:
        path = self.root / "mappings" / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def rules(self, name: str, text: str) -> Path:
        path = self.root / "mappings" / "rules" / f"{name}.csv"
        path.write_text(textwrap.dedent(text).lstrip())
        return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
