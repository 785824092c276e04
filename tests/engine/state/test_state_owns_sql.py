"""`engine/state/` is the only place SQL over the state file is written: a statement over a table (or a
setting of the connection) anywhere else in the engine is a second home for the state."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[3] / "engine"
STATEMENT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE\s+TABLE|ALTER\s+TABLE|MERGE)\b.*\b(FROM|INTO|SET|TABLE)\b"
                       r"|^\s*(SET|PRAGMA|ATTACH|COPY|INSTALL|LOAD)\b", re.IGNORECASE | re.DOTALL)


def _sql_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("execute", "executemany", "sql", "query") and node.args:
            text = " ".join(c.value for c in ast.walk(node.args[0]) if isinstance(c, ast.Constant)
                            and isinstance(c.value, str))
            if STATEMENT.search(text):
                found.append(f"{path}:{node.lineno}")
    return found


def test_no_sql_over_tables_outside_engine_state() -> None:
    outside = [p for p in ENGINE.rglob("*.py") if "state" not in p.relative_to(ENGINE).parts[:1]]
    assert outside and [f for p in outside for f in _sql_calls(p)] == []


def test_the_check_finds_a_statement_where_there_is_one(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('def f(conn):\n    conn.execute("SELECT id FROM ledger WHERE pipeline = ?", [1])\n'
                      '    conn.execute("SET threads = 1")\n')
    assert len(_sql_calls(module)) == 2
