"""The one schema finder: the engine's own format schemas, and a project's record and payload schemas.

Two kinds of JSON Schema, found in two places:

- **Format schemas** (`project`, `pipeline`, `mapping`): the shape of `ml-connector.yaml`,
  `pipelines/*.yaml` and `mappings/*.yaml`. They belong to the engine, so they are read from the
  installed package (`engine/templates/project/schemas/`, the project template's copies, kept
  byte-identical to the repository's `schemas/` by `tests/engine/cli/test_init.py`) with
  `importlib.resources`, never from a repository checkout: a pip-installed engine has none.
- **Project schemas** (J1P records under `schemas/jaggaer/`, Service Layer payloads under
  `schemas/sapb1/`): they belong to the customer's project and live in its `schemas/` folder. When the
  project does not have one, the packaged copy of the same name is used, so a minimal project still
  validates and renders.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from engine.errors import ConfigError

FORMAT_SCHEMAS = ("project", "pipeline", "mapping")
SCHEMAS_FOLDER = "schemas"  # a project's own schemas, under its root


@functools.cache
def packaged_dir() -> Path:
    """The schemas shipped in the package (`engine/templates/project/schemas/`), as a directory.

    An installed wheel is plain files, so this is the package's own directory; should the package ever
    be imported from an archive, it is extracted once for the life of the process."""
    node = resources.files("engine").joinpath("templates", "project", SCHEMAS_FOLDER)
    if isinstance(node, Path):
        return node
    stack = contextlib.ExitStack()
    atexit.register(stack.close)
    return stack.enter_context(resources.as_file(node))


def format_schema_path(name: str) -> Path:
    """The file of the engine's format schema `name` (`project`, `pipeline` or `mapping`)."""
    if name not in FORMAT_SCHEMAS:
        raise ValueError(f"no format schema {name!r}: one of {', '.join(FORMAT_SCHEMAS)}")
    return packaged_dir() / f"{name}.schema.json"


@functools.cache
def format_schema(name: str) -> dict[str, Any]:
    """The engine's format schema `name` (`project`, `pipeline` or `mapping`), parsed; read from the
    installed package with `importlib.resources`. Callers must not modify the returned dict."""
    if name not in FORMAT_SCHEMAS:
        raise ValueError(f"no format schema {name!r}: one of {', '.join(FORMAT_SCHEMAS)}")
    node = resources.files("engine").joinpath("templates", "project", SCHEMAS_FOLDER, f"{name}.schema.json")
    return json.loads(node.read_text(encoding="utf-8"))


def project_schema(root: Path, relative: str | PurePosixPath) -> Path:
    """A project's record or payload schema: `<root>/schemas/<relative>` (e.g. `sapb1/PurchaseOrders.schema.json`,
    `jaggaer/purchase-order.schema.json`), else the packaged copy of the same name. ConfigError naming the
    expected file when neither exists."""
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise ConfigError(f"schema {str(relative)!r}: must be a path inside {SCHEMAS_FOLDER}/")
    for base in (Path(root) / SCHEMAS_FOLDER, packaged_dir()):
        candidate = base.joinpath(*rel.parts)
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no schema {SCHEMAS_FOLDER}/{rel} in the project (nor shipped with the engine)")


def payload_schema_path(target: str, root: Path) -> Path:
    """The payload schema of a mapping's target: the project's `schemas/sapb1/<X>` (`jaggaer:X`:
    `schemas/jaggaer/<X>`), else the copy shipped with the engine."""
    folder, name = ("jaggaer", target.split(":", 1)[1]) if target.startswith("jaggaer:") else ("sapb1", target)
    try:
        return project_schema(root, f"{folder}/{name}.schema.json")
    except ConfigError:
        raise ConfigError(f"no payload schema for target {target!r}: expected schemas/{folder}/{name}.schema.json") from None
