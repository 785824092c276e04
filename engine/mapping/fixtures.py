"""Mapping fixtures: a source record in, the expected payload (or wait / quarantine / skip) out.

`mappings/fixtures/<mapping>/<case>.yaml`::

    description: PO with a 60/40 split posts through the PLANTS distribution rule
    key: "3120457"                       # staged primary key (messages name it)
    crosswalk:                           # what earlier pipelines synced: type -> jaggaer id -> b1 key
      suppliers: {"20417": V10020}
      purchase_orders: {"0000000412": {b1_key: "415", line_map: {"1": 0}}}
    reference_codes: {accounts: [...]}   # optional; default mappings/fixtures/reference_codes.yaml
    record: {...}                        # the staged J1P record
    expect:
      payload: {...}                     # status ok, payload equal (reserved keys included)
      # or: status: wait | quarantine | skip, reason: "text the reason contains"
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError
from engine.mapping.core import Lookups, MappingFile, load_mapping
from engine.yamlfile import load_yaml


@dataclass
class FixtureResult:
    mapping: str
    case: str
    path: Path
    passed: bool
    messages: list[str] = field(default_factory=list)
    actual: Any = None


def compare(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Readable differences between an expected and an actual payload, one line per field."""
    where = path or "(payload)"
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for k, v in expected.items():
            sub = f"{path}.{k}" if path else str(k)
            out += [f"{sub}: expected {v!r}, but the field is missing"] if k not in actual else compare(v, actual[k], sub)
        for k, v in actual.items():
            if k not in expected:
                out.append(f"{path}.{k}: not expected, got {v!r}" if path else f"{k}: not expected, got {v!r}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = [f"{where}: expected {len(expected)} items, got {len(actual)}"] if len(expected) != len(actual) else []
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            out += compare(e, a, f"{path}[{i}]")
        return out
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    return []


def _reference_codes(raw: Any) -> dict[str, set[str]] | None:
    if raw is None:
        return None
    return {str(k): {str(v) for v in values} for k, values in raw.items()}


def fixture_paths(project_root: Path, names: Iterable[str] | None = None) -> list[Path]:
    base = project_root / "mappings" / "fixtures"
    wanted = set(names) if names else None
    paths = []
    if base.is_dir():
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            if wanted is None or folder.name in wanted:
                paths += sorted(folder.glob("*.yaml"))
    return paths


def run_fixture(path: Path, mapping: MappingFile, default_codes: dict[str, set[str]] | None) -> FixtureResult:
    result = FixtureResult(mapping.name, path.stem, path, False)
    try:
        case = _load(path) or {}
    except ConfigError as exc:
        result.messages.append(str(exc))
        return result
    if not isinstance(case, dict) or "record" not in case or not isinstance(case.get("expect"), dict):
        result.messages.append("a fixture needs `record` and `expect` (payload, or status and reason)")
        return result
    codes = _reference_codes(case.get("reference_codes")) if "reference_codes" in case else default_codes
    lookups = Lookups(crosswalk=case.get("crosswalk") or {}, reference_codes=codes, api_version=case.get("api_version"))
    rendered = mapping.render(case["record"], str(case.get("key", path.stem)), lookups=lookups)
    expect = case["expect"]
    status = expect.get("status", "ok")
    result.actual = rendered.payload if rendered.ok else {"status": rendered.status, "reason": rendered.reason}
    if rendered.status != status:
        result.messages.append(f"expected status {status}, got {rendered.status}" + (f": {rendered.reason}" if rendered.reason else ""))
    elif status == "ok":
        result.messages += compare(expect.get("payload"), rendered.payload)
    elif expect.get("reason") and expect["reason"] not in (rendered.reason or ""):
        result.messages.append(f"expected the reason to contain {expect['reason']!r}, got {rendered.reason!r}")
    result.passed = not result.messages
    return result


def run_fixtures(project_root: Path, names: Iterable[str] | None = None, *, update: bool = False) -> list[FixtureResult]:
    """Run the fixtures of the named mappings (all when None); `update` rewrites expected payloads."""
    project_root = Path(project_root)
    codes_file = project_root / "mappings" / "fixtures" / "reference_codes.yaml"
    default_codes = _reference_codes(_load(codes_file)) if codes_file.is_file() else None
    results = []
    mappings: dict[str, MappingFile] = {}
    for path in fixture_paths(project_root, names):
        name = path.parent.name
        if name not in mappings:
            mapping_path = project_root / "mappings" / f"{name}.yaml"
            if not mapping_path.is_file():
                results.append(FixtureResult(name, path.stem, path, False, [f"no mapping {mapping_path}"]))
                continue
            try:
                mappings[name] = load_mapping(mapping_path, project_root=project_root)
            except ConfigError as exc:
                results.append(FixtureResult(name, path.stem, path, False, [str(exc)]))
                continue
        result = run_fixture(path, mappings[name], default_codes)
        if update and not result.passed and result.actual is not None:
            _update(path, result)
        results.append(result)
    return results


def _load(path: Path) -> Any:
    """A fixture file's data (engine.yamlfile: strict UTF-8, no aliases); ConfigError if unusable."""
    doc = load_yaml(path)
    doc.refuse_duplicates()
    return doc.data


def _update(path: Path, result: FixtureResult) -> None:
    case = _load(path)
    if isinstance(result.actual, dict) and set(result.actual) == {"status", "reason"}:
        case["expect"] = dict(result.actual)
    else:
        case["expect"] = {"payload": result.actual}
    path.write_text(yaml.safe_dump(case, sort_keys=False, allow_unicode=True, width=110))
    result.messages.append("updated the expected output")
