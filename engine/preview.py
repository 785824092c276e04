"""`plan` (the verb): what a run would do with each staged record, without writing anything anywhere.

Pipelines are planned in dependency order; the dependants of a pipeline (purchase orders after suppliers,
invoices after orders) are planned as if the creates planned before them had landed (`assume_created`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.plan import Plan, assume_created
from engine.project import Project


def preview_plan(project: Project, names: Iterable[str] | None = None, refs: Iterable[str] | None = None, *,
                 state: Path | None = None) -> Plan:
    """The plan of the named pipelines (default: all; their dependencies too), for `refs` (staged keys) only
    when given, from `state` (default: the project's state file). Empty when nothing was extracted yet."""
    from engine.mapping import Lookups, load_mapping
    from engine.state import db, ledger
    from engine.state.planning import plan_pipeline

    state = state or project.state_path
    plan = Plan()
    if not state.exists():
        return plan
    keys = list(refs) if refs else None
    with db.connect(state, read_only=True) as conn:
        lookups = Lookups(crosswalk=ledger.load_crosswalk(conn))
        for pipeline in project.pipelines_with_dependencies(names):
            mapping = load_mapping(project.root / pipeline.mapping, project_root=project.root)
            part = plan_pipeline(conn, pipeline.name, mapping, keys=keys, lookups=lookups)
            assume_created(part, mapping, lookups)
            plan.extend(part)
            plan.mapping_versions.setdefault(pipeline.name, mapping.version)
    return plan
