"""A built wheel is a working engine on its own: no repository around it, no `schemas/` at the repo root.

The wheel is built from a copy of the sources (the working tree stays untouched), installed with
`--no-deps` into a fresh venv whose only link to the dev venv is a `.pth` line appending its
site-packages (so the dependencies import, while `engine` comes from the wheel alone); then, in a
directory outside the repository, the installed `ml-connector` entry point runs `init`, `validate` and
`test-mappings`. A second round removes the project's copies of the engine's format schemas and of the
Service Layer payload schemas: the engine reads the former from the package, and falls back to the
packaged copies of the latter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("engine", "simulators", "pyproject.toml", "README.md")
FORMAT_SCHEMAS = ("project", "pipeline", "mapping")


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(bin directory of a fresh venv holding only the wheel, the environment to run it in)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=ignore)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(origin, src / name)
    dist = base / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, src],
        cwd=base)
    [wheel] = dist.glob("ml_connector-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in FORMAT_SCHEMAS:
        assert f"engine/templates/project/schemas/{name}.schema.json" in names, f"{name} schema not in the wheel"

    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel], cwd=base)
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base).stdout.strip())
    # after the venv's own site-packages: dependencies resolve, `engine` does not (the dev venv's
    # editable install is a .pth of its own, which a plain path line does not process)
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ML_CONNECTOR", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    found = run([python, "-c", "import engine, simulators; print(engine.__file__); print(simulators.__file__)"],
                cwd=base, env=env).stdout.split()
    assert all(Path(f).is_relative_to(venv) for f in found), f"imported from outside the new venv: {found}"
    return venv / "bin", env


def test_installed_wheel_inits_validates_and_tests_mappings(installed, tmp_path_factory):
    bin_dir, env = installed
    work = tmp_path_factory.mktemp("outside")  # not under the repository
    assert not work.resolve().is_relative_to(REPO_ROOT)
    cli = bin_dir / "ml-connector"
    project = work / "acme"
    run([cli, "init", project], cwd=work, env=env)
    run([cli, "validate", "--project", project], cwd=work, env=env)
    run([cli, "test-mappings", "--project", project], cwd=work, env=env)

    # a minimal project: without the format schemas and the Service Layer payload schemas
    for name in FORMAT_SCHEMAS:
        (project / "schemas" / f"{name}.schema.json").unlink()
    shutil.rmtree(project / "schemas" / "sapb1")
    run([cli, "validate", "--project", project], cwd=work, env=env)
    run([cli, "test-mappings", "--project", project], cwd=work, env=env)


def test_project_schema_prefers_the_project_then_the_packaged_copy(tmp_path):
    from engine.errors import ConfigError
    from engine.schemas import format_schema, format_schema_path, packaged_dir, project_schema

    packaged = packaged_dir() / "sapb1" / "PurchaseOrders.schema.json"
    assert project_schema(tmp_path, "sapb1/PurchaseOrders.schema.json") == packaged
    own = tmp_path / "schemas" / "sapb1" / "PurchaseOrders.schema.json"
    own.parent.mkdir(parents=True)
    own.write_text("{}")
    assert project_schema(tmp_path, "sapb1/PurchaseOrders.schema.json") == own
    with pytest.raises(ConfigError, match="no schema schemas/sapb1/Nope.schema.json"):
        project_schema(tmp_path, "sapb1/Nope.schema.json")
    with pytest.raises(ConfigError, match="inside schemas/"):
        project_schema(tmp_path, "../ml-connector.yaml")
    for name in FORMAT_SCHEMAS:  # read from the package (tests/engine/cli/test_init.py keeps them the repo's)
        assert format_schema_path(name).is_relative_to(packaged_dir())
        assert format_schema(name) == json.loads(format_schema_path(name).read_text(encoding="utf-8"))
    with pytest.raises(ValueError):
        format_schema("sapb1/PurchaseOrders")
