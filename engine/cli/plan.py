"""`ml-connector plan [PIPELINE...]`: what a run would do, record by record. Writes nothing anywhere.

Renders the staged records with the current mappings and diffs them with the ledger: creates,
updates with field-level before/after, waits and quarantines. Dependants (purchase orders after
suppliers, invoices after orders) are planned as if the creates planned before them had landed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.cli.common import add_json_option, add_project_option
from engine.plan import Plan, PlanItem

SYMBOL = {"create": "+", "update": "~", "skip": "=", "wait": "…", "quarantine": "!", "ignore": "-", "failed": "x"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plan", help="show what a run would create, update, skip, hold back (writes nothing)")
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to plan (default: all)")
    add_project_option(parser)
    parser.add_argument("--limit", type=int, default=20, help="records listed per pipeline and action (default 20; 0: all)")
    parser.add_argument("--ref", action="append", default=None, help="only these staged keys (repeatable)")
    parser.add_argument("--state", type=Path, help="state file (default: the project's)")
    add_json_option(parser, help="print one JSON document: counts and every item but the unchanged, per "
                    "pipeline, with changed fields (--limit does not apply)")
    parser.set_defaults(func=run)


def format_plan(plan: Plan, limit: int = 20) -> str:
    lines: list[str] = []
    for pipeline, version in plan.mapping_versions.items():
        counts = plan.counts(pipeline)
        summary = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
        lines.append(f"{pipeline} (mapping {version}): {summary or 'nothing staged'}")
        for action in ("create", "update", "wait", "quarantine", "failed", "ignore"):
            items = plan.of(action, pipeline)
            shown = items if limit <= 0 else items[:limit]
            for item in shown:
                lines += _describe(item)
            if len(items) > len(shown):
                lines.append(f"  {SYMBOL[action]} ... and {len(items) - len(shown)} more {action}")
    total = plan.counts()
    lines.append(f"total: {total['create']} create, {total['update']} update, {total['skip']} unchanged, "
                 f"{total['wait']} waiting, {total['quarantine']} quarantined, {total['failed']} failed earlier "
                 f"-> {plan.writes} write(s) to SAP B1 (none made by `plan`)")
    return "\n".join(lines)


def _describe(item: PlanItem) -> list[str]:
    head = f"  {SYMBOL[item.action]} {item.action} {item.external_ref}"
    if item.record_key and item.record_key != item.external_ref:
        head += f" (record {item.record_key})"
    if item.target_key:
        head += f" -> B1 {item.target_key}"
    if item.resume:
        head += " [interrupted earlier: looked up in B1 first]"
    if item.action in ("wait", "quarantine", "failed", "ignore"):
        return [f"{head}: {item.reason}"]
    out = [head]
    if item.action == "update":
        out += [f"      {change}" for change in item.changes]
        if item.previous_mapping_version and item.previous_mapping_version != item.mapping_version:
            out.append(f"      (mapping changed: {item.previous_mapping_version} -> {item.mapping_version})")
    return out


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as one JSON-ready document: totals, and per pipeline its counts and every item that is not
    unchanged (`skip`), with the fields an update changes and the body SAP B1 would receive."""
    return {
        "counts": plan.counts(), "writes": plan.writes,
        "pipelines": [{
            "name": pipeline, "mapping_version": version, "counts": plan.counts(pipeline),
            "items": [_item(i) for i in plan.items if i.pipeline == pipeline and i.action != "skip"],
        } for pipeline, version in plan.mapping_versions.items()],
    }


def _item(item: PlanItem) -> dict[str, Any]:
    return {
        "action": item.action, "ref": item.external_ref, "record_key": item.record_key,
        "target_key": item.target_key, "reason": item.reason, "resume": item.resume,
        "changes": [{"path": c.path, "before": c.before, "after": c.after, "note": c.note} for c in item.changes],
        "body": item.body,
    }


def run(args: argparse.Namespace) -> int:
    """Print the plan (text, or one JSON document with `--json`); writes nothing."""
    from engine.preview import preview_plan
    from engine.project import load_project

    plan = preview_plan(load_project(args.project), args.pipelines or None, args.ref, state=args.state)
    if args.json:
        print(json.dumps(plan_document(plan), default=str))
    else:
        print(format_plan(plan, args.limit))
    return 0
