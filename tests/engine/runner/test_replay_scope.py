"""`replay` checks and loads only the pipelines of the failed records: a broken pipeline elsewhere in the
project does not stop it (a run of everything would refuse the project, naming the broken file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import engine.runner
from engine.errors import ConfigError
from engine.project import load_project
from engine.state import db, ledger

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    for folder in ("pipelines", "mappings", "schemas"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "ml-connector.yaml", tmp_path / "ml-connector.yaml")
    state = load_project(tmp_path, with_pipelines=False).state_path
    state.parent.mkdir(parents=True, exist_ok=True)
    with db.connect(state) as conn:
        ledger.ensure_tables(conn)
        ledger.mark_failed(conn, "run-1", [ledger.Mark("suppliers", "BRAVO-1", "B1 said no", "-5002", "BRAVO-1")])
    (tmp_path / "pipelines" / "invoices.yaml").write_text("name: invoices\nsource: 3\n")  # broken, not replayed
    return tmp_path


def test_replay_loads_only_the_pipelines_of_the_failed_records(project_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def run_pipelines(project, names, **options):  # noqa: ANN001, ANN003, ANN202
        seen.update(names=names, loaded=[p.name for p in project.pipelines], refs=options["refs"])
        return "report"

    monkeypatch.setattr(engine.runner, "run_pipelines", run_pipelines)
    project = load_project(project_root, with_pipelines=False)
    assert engine.runner.replay_failed(project) == "report"
    assert seen["names"] == ["suppliers"] and seen["refs"] == {"suppliers": {"BRAVO-1"}}
    assert "invoices" not in seen["loaded"] and "suppliers" in seen["loaded"]
    with pytest.raises(ConfigError, match="pipelines/invoices.yaml"):
        load_project(project_root)
