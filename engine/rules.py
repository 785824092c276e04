"""Rule tables: CSV files in `mappings/rules/` that assign B1 codes (GL account, cost centres, project…)
from source values. First matching row wins; the last row is usually the default (`*` everywhere).

File format (`mappings/rules/gl_accounts.csv`)::

    # lines starting with '#' are comments
    commodity,account,AccountCode,note
    2517*,,612000,vehicle parts without an account on the line
    *,,650000,default when the line has no account
    *,*,{account},otherwise the line's own account

- Columns whose name starts with a lower-case letter are **inputs**, matched against the keyword
  arguments of `rule('gl_accounts', commodity=..., account=...)`; columns starting with an upper-case
  letter are **outputs** (B1 property names), as are columns written `out:name` (for lower-case
  target names, e.g. J1P fields); `note`/`comment` columns are ignored.
- An input cell matches: `*` anything (also a missing value); empty only a missing or empty value;
  `abc*` any value starting with `abc`; otherwise the exact value (compared as text, trimmed).
- An output cell is a literal code, empty (no value: the field is left out), or `{input}`: the value
  of that input passed through (then checked against B1's codes at render time).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError
from engine.problems import Problem

IGNORED_COLUMNS = {"note", "notes", "comment", "comments"}
_PASSTHROUGH = re.compile(r"^\{([a-z][A-Za-z0-9_]*)\}$")

# Output property -> key of the reference-code structure (`fetch_reference_codes`) it must belong to.
REFERENCE_KEYS = {
    "AccountCode": "accounts",
    "ControlAccount": "accounts",
    "CostingCode": "costing1",
    "CostingCode2": "costing2",
    "CostingCode3": "costing3",
    "CostingCode4": "costing4",
    "CostingCode5": "costing5",
    "ProjectCode": "projects",
    "Project": "projects",
    "PayTermsGrpCode": "payment_terms",
    "PaymentGroupCode": "payment_terms",
    "TaxCode": "tax_codes",
    "VatGroup": "tax_codes",
    "WarehouseCode": "warehouses",
}
REFERENCE_LABELS = {
    "accounts": "an active account in SAP B1's ChartOfAccounts",
    "costing1": "an active distribution rule of dimension 1",
    "costing2": "an active distribution rule of dimension 2",
    "costing3": "an active distribution rule of dimension 3",
    "costing4": "an active distribution rule of dimension 4",
    "costing5": "an active distribution rule of dimension 5",
    "projects": "an active project in SAP B1",
    "payment_terms": "a payment terms group in SAP B1",
    "tax_codes": "a tax code in SAP B1",
    "warehouses": "a warehouse in SAP B1",
}

ReferenceCodes = Mapping[str, "set[str] | frozenset[str]"]


class RuleMiss(Exception):
    """No row of a rule table matches the values (a record-level problem: quarantine)."""


class InvalidCode(Exception):
    """A rule produced a code SAP B1 does not know (a record-level problem: quarantine)."""


@dataclass(frozen=True)
class RuleRow:
    line: int
    patterns: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class RuleTable:
    name: str
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    rows: list[RuleRow]
    content_hash: str
    _cache: dict[tuple, tuple[RuleRow, dict[str, str | None]]] = field(default_factory=dict, repr=False)

    def match(self, values: Mapping[str, object]) -> RuleRow | None:
        texts = tuple(_text(values.get(name)) for name in self.inputs)
        for row in self.rows:
            if all(_matches(p, v) for p, v in zip(row.patterns, texts, strict=True)):
                return row
        return None

    def apply(self, reference_codes: ReferenceCodes | None = None, **values: object) -> dict[str, str | None]:
        """Outputs of the first matching row; raises RuleMiss / InvalidCode naming table, row and values."""
        unknown = set(values) - set(self.inputs)
        if unknown:
            raise ConfigError(
                f"rule table {self.name} ({self.path.name}) has no input column {', '.join(sorted(unknown))}; "
                f"its inputs are {', '.join(self.inputs) or '(none)'}"
            )
        cache_key = tuple(_text(values.get(name)) for name in self.inputs)
        hit = self._cache.get(cache_key)
        if hit is None:
            row = self.match(values)
            if row is None:
                raise RuleMiss(f"rule table {self.name} has no row for {_describe(values, self.inputs)} and no default row")
            out: dict[str, str | None] = {}
            for name, cell in zip(self.outputs, row.outputs, strict=True):
                m = _PASSTHROUGH.match(cell)
                value = _text(values.get(m.group(1))) if m else cell
                out[name] = value or None
            hit = (row, out)
            if len(self._cache) < 100_000:
                self._cache[cache_key] = hit
        row, out = hit
        if reference_codes:
            for name, code in out.items():
                ref_key = REFERENCE_KEYS.get(name)
                if code is None or ref_key is None or ref_key not in reference_codes:
                    continue
                if code not in reference_codes[ref_key]:
                    raise InvalidCode(
                        f"rule table {self.name} ({self.path.name}:{row.line}) gives {name} '{code}' for "
                        f"{_describe(values, self.inputs)}, which is not {REFERENCE_LABELS[ref_key]}"
                    )
        return dict(out)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _matches(pattern: str, value: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1]) and value != ""
    return pattern == value


def _describe(values: Mapping[str, object], inputs: Iterable[str]) -> str:
    return ", ".join(f"{k}={_text(values.get(k))!r}" for k in inputs if k in values) or "no values"


def _file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_rule_table(path: Path) -> RuleTable:
    """Parse one CSV rule table; ConfigError naming file and line on a malformed table."""
    data = path.read_bytes()
    text = data.decode("utf-8-sig")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ConfigError(f"{path}: rule table is empty (needs a header row)")
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    rows = list(reader)
    header = [h.strip() for h in rows[0]]
    head_line = lines[0][0]
    outs_marked = {i for i, h in enumerate(header) if h.startswith("out:")}
    header = [h[4:] if i in outs_marked else h for i, h in enumerate(header)]
    for col in header:
        if not col or not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", col):
            raise ConfigError(f"{path}:{head_line}: column name {col!r} is not a name (letters, digits, '_')")
    if len(set(header)) != len(header):
        raise ConfigError(f"{path}:{head_line}: duplicate column names in {header}")
    in_idx = [i for i, h in enumerate(header) if i not in outs_marked and h[0].islower() and h.lower() not in IGNORED_COLUMNS]
    out_idx = [i for i, h in enumerate(header) if i in outs_marked or h[0].isupper()]
    if not out_idx:
        raise ConfigError(f"{path}:{head_line}: no output column (outputs are B1 property names, e.g. AccountCode)")
    inputs = tuple(header[i] for i in in_idx)
    parsed: list[RuleRow] = []
    for (line_no, _), cells in zip(lines[1:], rows[1:], strict=True):
        if len(cells) > len(header):
            raise ConfigError(f"{path}:{line_no}: {len(cells)} cells but the header has {len(header)} columns")
        cells = [c.strip() for c in cells] + [""] * (len(header) - len(cells))
        for i in out_idx:
            m = _PASSTHROUGH.match(cells[i])
            if m and m.group(1) not in inputs:
                raise ConfigError(f"{path}:{line_no}: {header[i]}: {cells[i]} names no input column (inputs: {', '.join(inputs)})")
        parsed.append(RuleRow(line_no, tuple(cells[i] for i in in_idx), tuple(cells[i] for i in out_idx)))
    return RuleTable(path.stem, path, inputs, tuple(header[i] for i in out_idx), parsed, _file_hash(data))


def load_rule_tables(rules_dir: Path, names: Iterable[str] | None = None) -> dict[str, RuleTable]:
    """Load the named tables (all `*.csv` in the folder when names is None)."""
    if names is None:
        paths = sorted(rules_dir.glob("*.csv")) if rules_dir.is_dir() else []
    else:
        paths = []
        for name in sorted(set(names)):
            path = rules_dir / f"{name}.csv"
            if not path.is_file():
                raise ConfigError(f"rule table {name!r} not found: expected {path}")
            paths.append(path)
    return {p.stem: load_rule_table(p) for p in paths}


def check_rule_codes(rule_tables: Mapping[str, RuleTable] | Iterable[RuleTable], reference_codes: ReferenceCodes) -> list[Problem]:
    """Every literal code a rule can produce, checked against B1's codes (fetched once per run).

    `reference_codes` is a plain structure: `{"accounts": {...}, "costing1": {...}, ..., "projects": {...}}`;
    keys absent from it are not checked. Passed-through values (`{input}`) are checked at render time.
    """
    tables = rule_tables.values() if isinstance(rule_tables, Mapping) else rule_tables
    problems: list[Problem] = []
    for table in tables:
        for row in table.rows:
            for name, cell in zip(table.outputs, row.outputs, strict=True):
                ref_key = REFERENCE_KEYS.get(name)
                if not cell or _PASSTHROUGH.match(cell) or ref_key is None or ref_key not in reference_codes:
                    continue
                if cell not in reference_codes[ref_key]:
                    problems.append(
                        Problem(str(table.path), row.line, name, f"rule table {table.name}: '{cell}' is not {REFERENCE_LABELS[ref_key]}")
                    )
        if not any(all(p == "*" for p in row.patterns) for row in table.rows):
            problems.append(
                Problem(str(table.path), None, "", f"rule table {table.name} has no default row (all inputs '*'): "
                        "a value no row matches will quarantine its record")
            )
    return problems
