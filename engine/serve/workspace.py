"""Which customers one `serve` runs, and what it schedules for each.

    customers = discover(workspace=Path("/srv/customers"), projects=[])   # each subdirectory with ml-connector.yaml
    plan = load_customer(customers[0], default_every=900.0)               # pipelines, schedules, B1 entities

A customer is a project directory (`ml-connector.yaml`, pipelines, mappings, its own state file,
credentials and lock). Discovery and loading are pure reads of the project files: no credentials, no
state file, no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.serve.scheduler import Schedule, ScheduleError, parse_schedule
from engine.spec import PROJECT_FILE

_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class WorkspaceError(ValueError):
    """Nothing to serve, or a directory that is not a project."""


@dataclass(frozen=True)
class Customer:
    """One customer project: `id` is unique within this serve (metrics label, log field, webhook path)."""

    id: str
    root: Path


@dataclass(frozen=True)
class ScheduledPipeline:
    name: str
    schedule: Schedule
    entities: tuple[str, ...]  # SAP B1 entity sets it reads or writes (what a webhook may nudge)


@dataclass
class CustomerPlan:
    """What serve runs for one customer, and what it could not use (each problem one line)."""

    customer: Customer
    pipelines: list[ScheduledPipeline] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sapb1_connection: str | None = None  # the SAP B1 company its pipelines read or write (webhooks)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.pipelines)


def customer_id(path: Path) -> str:
    """A label-safe name from a directory name."""
    return _ID_CHARS.sub("-", path.name).strip("-") or "project"


def discover(workspace: Path | None = None, projects: Iterable[Path] = ()) -> list[Customer]:
    """The customers to serve: every direct subdirectory of `workspace` holding `ml-connector.yaml`
    (hidden ones skipped, sorted by name), then each `projects` directory; the same directory once.
    Ids are the directory names, made unique with `-2`, `-3`. Raises WorkspaceError when a named
    project lacks its project file or nothing is found."""
    roots: list[Path] = []
    if workspace is not None:
        if not workspace.is_dir():
            raise WorkspaceError(f"workspace {workspace} is not a directory")
        roots += [child for child in sorted(workspace.iterdir())
                  if child.is_dir() and not child.name.startswith(".") and (child / PROJECT_FILE).is_file()]
        if not roots and not projects:
            raise WorkspaceError(f"workspace {workspace} has no project (no subdirectory with {PROJECT_FILE})")
    for project in projects:
        if not (project / PROJECT_FILE).is_file():
            raise WorkspaceError(f"{project} is not a project: no {PROJECT_FILE}")
        roots.append(project)
    customers: list[Customer] = []
    seen: set[Path] = set()
    taken: set[str] = set()
    for root in roots:
        resolved = root.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        base = ident = customer_id(resolved)
        n = 1
        while ident in taken:
            n += 1
            ident = f"{base}-{n}"
        taken.add(ident)
        customers.append(Customer(ident, resolved))
    if not customers:
        raise WorkspaceError("nothing to serve: give --workspace DIR or --project DIR")
    return customers


def load_customer(customer: Customer, *, default_every: float | None = None) -> CustomerPlan:
    """Every pipeline of a customer, each with its `schedule:` (else `default_every` seconds); which ones a
    run actually runs is `run_pipelines`' business. Problems (an invalid project file or spec, a bad
    schedule) are collected, not raised: that customer is not served, the others are. Mapping files are
    not checked here: a broken mapping fails that pipeline's runs, which are retried and reported."""
    from engine.project import check_project

    plan = CustomerPlan(customer)
    project, problems = check_project(customer.root, check_mappings=False)  # the project file's problems too
    plan.problems += [str(p) for p in problems]
    if project is None or plan.problems:
        return plan
    specs = project.pipelines
    connections = set()
    for spec in specs:
        try:
            schedule = parse_schedule(spec.schedule, default_every=default_every)
        except ScheduleError as exc:
            plan.problems.append(f"{spec.path.relative_to(customer.root)}: {exc}")
            continue
        entities = []
        for part in (spec.target, spec.source):  # what it writes, then what it reads, in SAP B1
            if part.kind == "sapb1":
                entities.append(part.endpoint)
                connections.add(part.connection)
        plan.pipelines.append(ScheduledPipeline(spec.name, schedule, tuple(dict.fromkeys(entities))))
    if len(connections) == 1:
        plan.sapb1_connection = next(iter(connections))
    return plan


def entity_pipelines(pipelines: Iterable[ScheduledPipeline]) -> dict[str, list[str]]:
    """SAP B1 entity set -> the pipelines reading or writing it (what a notification about it nudges)."""
    out: dict[str, list[str]] = {}
    for pipeline in pipelines:
        for entity in pipeline.entities:
            out.setdefault(entity, []).append(pipeline.name)
    return out


def register_secrets(customer: Customer, connection_names: Iterable[str] | None = None) -> list[str]:
    """Register the customer's secret values (passwords, client secrets) for redaction in this process;
    the connections that could not be resolved (their secret is not set: the run will say so)."""
    from engine import secrets
    from engine.errors import ConnectorError
    from engine.project import SECRET_KEYS, load_project

    unresolved = []
    try:
        project = load_project(customer.root, with_pipelines=False)
    except ConnectorError:
        return ["*"]
    for name in connection_names if connection_names is not None else project.connections:
        try:
            profile: dict[str, Any] = project.connection(name)
        except ConnectorError:
            unresolved.append(name)
            continue
        secrets.register(*(str(profile[k]) for k in SECRET_KEYS if profile.get(k)))
    return unresolved
