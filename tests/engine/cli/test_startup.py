"""Start-up: building the parser (`ml-connector --help`) and `validate` import none of the heavy
libraries a run needs. Checked in a fresh interpreter by what lands in `sys.modules`, not by timing.
Verbs are registered lazily (`engine.cli.VERBS`); each still parses and prints help as its module says."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import VERBS, build_parser, main

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("dlt", "duckdb", "pyarrow", "rich", "httpx")


def imported_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; `result` (if it sets one) and which HEAVY modules it imported."""
    probe = f"""
import json, sys
result = None
{code}
print(json.dumps({{"result": result, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_building_the_parser_and_the_top_level_help_import_no_heavy_library():
    seen = imported_after("""
import contextlib, io
import engine.cli
engine.cli.build_parser()
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    engine.cli.main(["--help"])
result = out.getvalue()
""")
    assert seen["heavy"] == []
    listed = {line.split()[0] for line in seen["result"].splitlines() if line.startswith("    ") and line.strip()}
    assert {verb for _, verb, _ in VERBS} <= listed


def test_validate_imports_neither_dlt_nor_duckdb_nor_pyarrow():
    seen = imported_after(f"""
import contextlib, io
from engine.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    result = main(["validate", "--project", {str(REPO_ROOT)!r}])
""")
    assert seen["result"] == 0
    assert not {"dlt", "duckdb", "pyarrow"} & set(seen["heavy"])


def test_validate_imports_neither_httpx_nor_rich():
    """engine/sapb1/__init__.py imports its names on first use: the URL check does not load the client."""
    seen = imported_after(f"""
import contextlib, io
from engine.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    result = main(["validate", "--project", {str(REPO_ROOT)!r}])
""")
    assert seen["result"] == 0 and seen["heavy"] == []


@pytest.mark.parametrize(("module", "verb", "help_text"), VERBS, ids=[v for _, v, _ in VERBS])
def test_each_verb_lists_the_help_its_module_registers(module, verb, help_text):
    subparsers = argparse.ArgumentParser(prog="ml-connector").add_subparsers()
    importlib.import_module(f"engine.cli.{module}").register(subparsers)
    (action,) = subparsers._choices_actions
    assert (action.dest, action.help) == (verb, help_text), "engine.cli.VERBS must give the verb and help of its module"


@pytest.mark.parametrize("verb", [v for _, v, _ in VERBS])
def test_each_verb_prints_its_own_help(verb, capsys):
    with pytest.raises(SystemExit) as done:
        main([verb, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: ml-connector {verb} ")


def test_a_verb_parses_its_own_arguments():
    from engine.cli import validate

    args = build_parser().parse_args(["validate", "--project", "p", "suppliers", "invoices"])
    assert (args.command, args.func, args.project, args.pipelines) == (
        "validate", validate.run, Path("p"), ["suppliers", "invoices"])
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["validate", "--no-such-flag"])
    assert done.value.code == 2
