"""A throwaway copy of the repo's demo project (project file + pipelines) with stand-in mapping and
record-schema files, so `validate` tests do not depend on other people's files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("JAGGAER_CLIENT_ID", "JAGGAER_CLIENT_SECRET", "SAPB1_USERNAME", "SAPB1_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    shutil.copy(REPO / "ml-connector.yaml", tmp_path / "ml-connector.yaml")
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    (tmp_path / "mappings").mkdir()
    for name in ("supplier", "purchase_order", "invoice", "supplier_to_jaggaer"):
        (tmp_path / "mappings" / f"{name}.yaml").write_text("fields: {}\n")
    (tmp_path / "schemas" / "jaggaer").mkdir(parents=True)
    for name in ("purchase-order", "invoice", "company-profile"):
        (tmp_path / "schemas" / "jaggaer" / f"{name}.schema.json").write_text('{"type": "object"}\n')
    # no mapping checker from the mapping module in these tests unless a test installs one
    monkeypatch.setattr("engine.spec._mapping_problems", lambda path, target_entity: [])
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")
