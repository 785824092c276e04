"""`ml-connector init DIR`: a new project that `validate` and `test-mappings` accept as it is; a
non-empty directory refused unless `--force`; a `.gitignore` keeping the state and secrets out of git;
and the packaged template identical to the repository's own demo project.

The template (engine/templates/project/) is a copy of the repository's project files. After changing
ml-connector.yaml, pipelines/, mappings/ or schemas/, resync it with

    .venv/bin/python -m tests.engine.cli.test_init --sync-template
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.scaffold import GITIGNORE, template_files

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_DIR = REPO_ROOT / "engine" / "templates" / "project"
SYNC_COMMAND = ".venv/bin/python -m tests.engine.cli.test_init --sync-template"


def test_the_packaged_template_is_the_repositorys_demo_project():
    template = {rel: f.read_bytes() for rel, f in template_files().items()}
    repo = {rel: f.read_bytes() for rel, f in template_files(REPO_ROOT).items()}
    assert "ml-connector.yaml" in template and any(rel.startswith("schemas/") for rel in template)
    stale = sorted(rel for rel in template.keys() | repo.keys() if template.get(rel) != repo.get(rel))
    assert not stale, f"engine/templates/project/ differs from the repository's project in {stale}: run `{SYNC_COMMAND}`"


def test_init_writes_a_project_that_validate_and_test_mappings_accept(tmp_path, capsys):
    project = tmp_path / "acme"
    assert main(["init", str(project), "--name", "acme"]) == 0
    out = capsys.readouterr().out
    assert f"created project in {project}" in out
    for step in ("export JAGGAER_CLIENT_ID=", "ml-connector credentials set", "ml-connector validate",
                 "ml-connector check", "ml-connector run"):
        assert step in out

    assert "\nproject: acme\n" in (project / "ml-connector.yaml").read_text()
    assert sorted(p.name for p in (project / "pipelines").glob("*.yaml")) == [
        "invoices.yaml", "purchase_orders.yaml", "suppliers.yaml", "suppliers_to_jaggaer.yaml"]
    assert list((project / "mappings" / "rules").glob("*.csv"))
    assert list((project / "mappings" / "fixtures").glob("*/*.yaml"))
    assert (project / "schemas" / "sapb1" / "PurchaseOrders.schema.json").is_file()
    assert (project / ".gitignore").read_text() == GITIGNORE

    assert main(["validate", "--project", str(project)]) == 0
    assert main(["test-mappings", "--project", str(project)]) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_init_creates_the_directory_and_names_the_project_after_it(tmp_path, capsys):
    project = tmp_path / "new" / "Acme Corp"
    assert main(["init", str(project)]) == 0
    assert "\nproject: Acme-Corp\n" in (project / "ml-connector.yaml").read_text()
    # everything else in the project file is the template's, comments included
    template = (TEMPLATE_DIR / "ml-connector.yaml").read_text().splitlines()
    written = (project / "ml-connector.yaml").read_text().splitlines()
    assert [a for a, b in zip(template, written, strict=True) if a != b] == ["project: demo"]


def test_a_non_empty_directory_is_refused_unless_forced(tmp_path, capsys):
    project = tmp_path / "acme"
    project.mkdir()
    (project / "ml-connector.yaml").write_text("mine\n")
    (project / "notes.txt").write_text("keep me\n")
    (project / ".gitignore").write_text("*.tmp")

    assert main(["init", str(project)]) == 1
    err = capsys.readouterr().err
    assert "is not empty" in err and "--force" in err
    assert sorted(p.name for p in project.iterdir()) == [".gitignore", "ml-connector.yaml", "notes.txt"]
    assert (project / "ml-connector.yaml").read_text() == "mine\n"

    assert main(["init", str(project), "--force"]) == 0
    assert "project: acme" in (project / "ml-connector.yaml").read_text()
    assert (project / "notes.txt").read_text() == "keep me\n"
    gitignore = (project / ".gitignore").read_text()
    assert gitignore.startswith("*.tmp\n")  # the user's own lines are kept, ours added
    assert all(line in gitignore.splitlines() for line in ("var/", "*.duckdb", ".dlt/", "*.key"))
    assert main(["validate", "--project", str(project)]) == 0


def test_a_file_or_a_bad_name_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["init", str(tmp_path / "file")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "p"), "--name", "9 lives"]) == 1
    assert "project name '9 lives'" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    assert main(["init", str(tmp_path / "2024")]) == 1
    assert "--name" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_gitignore_keeps_state_and_secrets_out_of_git_and_the_project_in(tmp_path):
    project = tmp_path / "acme"
    assert main(["init", str(project)]) == 0
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(project)], check=True, env=env)

    def ignored(*paths: str) -> set[str]:
        done = subprocess.run(["git", "-C", str(project), "check-ignore", "--no-index", *paths],
                              capture_output=True, text=True, env=env)
        assert done.returncode in (0, 1), done.stderr
        return set(done.stdout.split())

    kept_out = ["var/state.duckdb", "var/dlt/x", "other.duckdb", "var2.duckdb.wal", "state.duckdb.lock",
                ".dlt/secrets.toml", "credentials.json", "credentials.json.enc", "key", "tls/client.key",
                "tls/client.pem", ".env", "prod.env"]
    assert ignored(*kept_out) == set(kept_out)
    project_files = [str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and ".git" not in p.parts]
    assert "mappings/rules/gl_accounts.csv" in project_files and ".gitignore" in project_files
    assert ignored(*project_files) == set()


def sync_template() -> list[str]:
    """Make engine/templates/project/ a copy of the repository's project files; the changed paths."""
    repo = template_files(REPO_ROOT)
    changed = []
    for rel, path in template_files(TEMPLATE_DIR).items():
        if rel not in repo:
            path.unlink()
            changed.append(f"- {rel}")
    for rel, source in repo.items():
        target = TEMPLATE_DIR / rel
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            changed.append(f"+ {rel}")
    for folder in sorted(TEMPLATE_DIR.rglob("*"), reverse=True):  # drop folders left empty
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return changed


if __name__ == "__main__":
    if sys.argv[1:] != ["--sync-template"]:
        sys.exit(f"usage: {SYNC_COMMAND}")
    print("\n".join(sync_template()) or "engine/templates/project/ is up to date")
