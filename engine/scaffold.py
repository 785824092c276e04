"""A new customer project (`ml-connector init DIR`): the demo project's files, ready for `validate`.

The template is `engine/templates/project/`, shipped inside the package (a pip-installed engine has no
repository around it) and read with `importlib.resources`. It is a copy of the repository's own demo
project (`ml-connector.yaml`, `pipelines/`, `mappings/`, `schemas/`); a test keeps the two identical.
`init` writes the template, the project's name, and a `.gitignore` that keeps the state and secrets out
of git. Functions return what they wrote and never print.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from engine.errors import ConfigError

PROJECT_FILE = "ml-connector.yaml"
PROJECT_SCHEMA = "schemas/project.schema.json"
TEMPLATE_SUFFIXES = (".yaml", ".csv", ".json")  # the template's files (package data: pyproject.toml)

# What a project keeps out of git: the customer's state and every secret.
GITIGNORE = """\
# ml-connector: the state and secrets stay out of git.
# State: the DuckDB state file, its WAL, run locks, dlt's working files.
var/
*.duckdb
*.duckdb.wal
*.lock
.dlt/
# Secrets: credentials come from the environment or the encrypted store (`ml-connector credentials set`).
.env
*.env
credentials.json
*.enc
key
*.key
*.pem
*.p12
*.pfx
# Python
__pycache__/
*.pyc
"""

_PROJECT_LINE = re.compile(r"^project:[^\n#]*?(?=[ \t]*(?:#|$))", re.MULTILINE)


def template_root() -> Traversable:
    """The project template shipped in the package."""
    return resources.files("engine") / "templates" / "project"


def template_files(root: Traversable | Path | None = None) -> dict[str, Traversable | Path]:
    """The template's files (or a project directory's files of the same kinds): relative POSIX path ->
    file; `ml-connector.yaml`, then `pipelines/`, `mappings/` and `schemas/` (nothing else counts)."""
    root = template_root() if root is None else root
    found: dict[str, Traversable | Path] = {}

    def walk(node: Traversable | Path, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                if child.name != "__pycache__":
                    walk(child, rel + "/")
            elif child.name.endswith(TEMPLATE_SUFFIXES):
                found[rel] = child

    project_file = root / PROJECT_FILE
    if project_file.is_file():
        found[PROJECT_FILE] = project_file
    for folder in ("pipelines", "mappings", "schemas"):
        node = root / folder
        if node.is_dir():
            walk(node, folder + "/")
    return found


def default_name(directory: Path) -> str:
    """A project name from the directory's name: other characters than letters, digits, `_` and `-`
    become `-`; '' when nothing usable is left."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", directory.resolve().name).strip("-_")
    return name if name[:1].isalpha() else ""


def check_name(name: str) -> None:
    """The project schema's rule for `project:`; ConfigError naming it when `name` breaks it."""
    schema = json.loads((template_root() / PROJECT_SCHEMA).read_text(encoding="utf-8"))
    pattern = schema["properties"]["project"]["pattern"]
    if not re.fullmatch(pattern, name):
        raise ConfigError(f"project name {name!r}: must match {pattern} (a letter, then letters, digits, _ or -)")


def with_name(project_yaml: str, name: str) -> str:
    """`ml-connector.yaml` text with the top-level `project:` value replaced (comments kept)."""
    text, count = _PROJECT_LINE.subn(f"project: {name}", project_yaml, count=1)
    if count != 1:
        raise ConfigError(f"template {PROJECT_FILE} has no top-level 'project:' line")
    return text


def init_project(directory: str | Path, *, name: str | None = None, force: bool = False) -> list[Path]:
    """Write a new project into `directory` (created if missing) and return the files written.

    Refuses (ConfigError) a directory that is not empty unless `force`; then the template's files
    replace files of the same name, others are left alone, and an existing `.gitignore` only gains the
    lines it lacks. `name` defaults to the directory's name."""
    directory = Path(directory)
    name = name if name is not None else default_name(directory)
    if not name:
        raise ConfigError(f"cannot make a project name of the directory name {directory.resolve().name!r}: "
                          "give one with --name")
    check_name(name)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ConfigError(f"{directory} is not empty: choose an empty or new directory, or pass --force "
                          "to write the project's files over files of the same name")

    written: list[Path] = []
    for rel, source in template_files().items():
        target = directory.joinpath(*rel.split("/"))
        data = source.read_bytes()
        if rel == PROJECT_FILE:
            data = with_name(data.decode("utf-8"), name).encode("utf-8")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    gitignore = directory / ".gitignore"
    if _write_gitignore(gitignore):
        written.append(gitignore)
    return written


def _write_gitignore(path: Path) -> bool:
    """Write `GITIGNORE`, or add the patterns an existing file lacks; False when it had them all."""
    if not path.exists():
        path.write_text(GITIGNORE, encoding="utf-8")
        return True
    text = path.read_text(encoding="utf-8")
    have = {line.strip() for line in text.splitlines()}
    missing = [line for line in GITIGNORE.splitlines() if line and not line.startswith("#") and line not in have]
    if not missing:
        return False
    sep = "\n" if text and not text.endswith("\n") else ""
    path.write_text(text + sep + "# added by ml-connector init\n" + "\n".join(missing) + "\n", encoding="utf-8")
    return True
