"""A project, loaded once into typed objects: `ml-connector.yaml` (name, state file, connection profiles)
and its pipelines (`engine.spec.Pipeline`), checked together — every problem at once, as
`file:line: field: message`. Every verb loads the project once (`load_project`) and passes it on.

Any value may be `{env: NAME, default: ...}`. Secrets (`client_secret`, `password`) may only be
`{env: NAME}`: never literal in YAML, never echoed in a message. A connection may also say
`credentials: {customer: NAME}`: the values it does not set come from that customer's profile of the
connection's kind in the encrypted credential store (`engine.credentials`). Checking the file needs no
credentials; `Project.connection()` resolves a profile from the environment (and the store) when a
command runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ConfigError
from engine.problems import Problem
from engine.spec import (
    PROJECT_FILE,
    SCHEMAS_DIR,
    Located,
    Pipeline,
    did_you_mean,
    display_path,
    load_located,
    load_pipeline,
    parse_pipeline_file,
    pipeline_files,
    reference_problems,
    schema_problems,
)

PROJECT_SCHEMA = SCHEMAS_DIR / "project.schema.json"
SECRET_KEYS = frozenset({"client_secret", "password"})
URL_KEYS = {"jaggaer": ("base_url", "token_url")}
TOKEN_PATH = "/auth/realms/J1p-integrations/protocol/openid-connect/token"


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    state_path: Path
    connections: Mapping[str, dict[str, Any]]
    commit_every: int = 10000
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False, compare=False)
    # the pipelines loaded with the project (all, or those named and what they read with), in dependency order
    pipelines: tuple[Pipeline, ...] = ()

    def pipeline(self, name: str) -> Pipeline:
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        raise ConfigError(f"no pipeline '{name}'{did_you_mean(name, [p.name for p in self.pipelines])}")

    def select(self, names: Iterable[str] | None = None) -> list[Pipeline]:
        """The named pipelines (default: all loaded), in dependency order."""
        if not names:
            return list(self.pipelines)
        wanted = set(names)
        for name in wanted:
            self.pipeline(name)
        return [p for p in self.pipelines if p.name in wanted]

    def pipelines_with_dependencies(self, names: Iterable[str] | None = None) -> list[Pipeline]:
        """The named pipelines and those they depend on, in dependency order (default: all loaded)."""
        if not names:
            return list(self.pipelines)
        wanted, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo += self.pipeline(name).depends_on
        return [p for p in self.pipelines if p.name in wanted]

    @property
    def dlt_dir(self) -> Path:
        """dlt's working directory: beside the state file, so it survives and is per customer."""
        return self.state_path.parent / "dlt"

    def connection(self, name: str) -> dict[str, Any]:
        """The named profile with every `{env: ...}` resolved and, with `credentials: {customer: C}`, what
        it does not set (or sets to null) taken from customer C's stored profile of the connection's kind;
        raises ConfigError naming what is missing."""
        if name not in self.connections:
            raise ConfigError(f"{PROJECT_FILE}: no connection '{name}'")
        profile = self.connections[name]
        resolved = {}
        for key, value in profile.items():
            if key != "credentials":
                resolved[key] = self._resolve(name, key, value)
        if isinstance(profile.get("credentials"), dict):
            for key, value in self._stored(name, profile).items():
                if resolved.get(key) is None:
                    resolved[key] = value
        for key in URL_KEYS.get(resolved.get("kind", ""), ()):
            if resolved.get(key) is not None:
                if problem := url_problem(str(resolved[key])):
                    raise ConfigError(f"{PROJECT_FILE}: connections.{name}.{key}: {problem}")
                resolved[key] = str(resolved[key]).rstrip("/")
        if resolved.get("kind") == "jaggaer" and not resolved.get("token_url"):
            resolved["token_url"] = resolved["base_url"] + TOKEN_PATH
        return resolved

    def _stored(self, conn: str, profile: Mapping[str, Any]) -> dict[str, Any]:
        """The store's profile for the one customer this connection names, of the connection's kind."""
        from engine.credentials import get_profile

        try:
            return get_profile(str(profile["credentials"]["customer"]), str(profile.get("kind")), environ=self.environ)
        except ConfigError as exc:
            raise ConfigError(f"connection '{conn}': {exc}") from None

    def _resolve(self, conn: str, key: str, value: Any) -> Any:
        if not (isinstance(value, dict) and "env" in value):
            return value
        var = value["env"]
        got = self.environ.get(var)
        if got not in (None, ""):
            return got
        if "default" in value:
            return value["default"]
        raise ConfigError(
            f"connection '{conn}': {key} comes from environment variable {var}, which is not set "
            f"(export {var}=... before running)"
        )


def url_problem(url: str) -> str | None:
    """J1P §2.1: absolute https URL (http only on loopback), no query, fragment or user-info."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc})"
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} must be an absolute https:// URL"
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return f"{url!r}: plain http is allowed only for a loopback host; use https"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return f"{url!r} must not carry a query or fragment"
    if parts.username or parts.password:
        return "the URL must not carry user-info (credentials belong in client_id/client_secret)"
    return None


def check_project_file(root: Path) -> tuple[Project | None, list[Problem]]:
    """Validate `ml-connector.yaml` (structure, secrets only from env, URLs); no environment needed."""
    path = Path(root) / PROJECT_FILE
    if not path.is_file():
        return None, [Problem(PROJECT_FILE, None, "", f"no {PROJECT_FILE} in {Path(root).resolve()} (run in a project directory)")]
    located, problems = load_located(path, display=PROJECT_FILE)
    if located is None:
        return None, problems
    problems += [_hide_secret(p) for p in schema_problems(located, PROJECT_SCHEMA, PROJECT_FILE)]
    data = located.data if isinstance(located.data, dict) else {}
    for conn, profile in (data.get("connections") or {}).items():
        if not isinstance(profile, dict):
            continue
        for key in URL_KEYS.get(profile.get("kind", ""), ()):
            value = profile.get(key)
            literal = value.get("default") if isinstance(value, dict) else value
            if isinstance(literal, str) and (problem := url_problem(literal)):
                problems.append(Problem(PROJECT_FILE, located.line(("connections", conn, key)), f"connections.{conn}.{key}", problem))
        root_value = profile.get("service_root") if profile.get("kind") == "sapb1" else None
        literal = root_value.get("default") if isinstance(root_value, dict) else root_value
        if isinstance(literal, str) and (problem := _service_root_problem(literal)):
            problems.append(Problem(PROJECT_FILE, located.line(("connections", conn, "service_root")),
                                    f"connections.{conn}.service_root", problem))
    if problems:
        return None, problems
    project = Project(
        root=Path(root),
        name=data["project"],
        state_path=(Path(root) / data["state"]),
        connections=data["connections"],
        commit_every=(data.get("extract") or {}).get("commit_every", 10000),
    )
    return project, []


def _service_root_problem(url: str) -> str | None:
    """SAP B1 service-root rules live with the SAP client (engine.sapb1.url); used when present."""
    try:
        from engine.sapb1.url import ServiceRoot
    except ImportError:
        return None
    try:
        ServiceRoot.parse(url)
    except ConfigError as exc:
        return str(exc)
    return None


def _hide_secret(problem: Problem) -> Problem:
    if SECRET_KEYS & set(problem.field.split(".")):
        return Problem(problem.file, problem.line, problem.field,
                       "secrets come only from the environment: write {env: NAME} (no literal value, no default)")
    return problem


def load_project(root: Path | str = ".", names: Iterable[str] | None = None, *,
                 environ: Mapping[str, str] | None = None, check_mappings: bool = True,
                 with_pipelines: bool = True) -> Project:
    """The project in `root` with its pipelines (all, or those named and what they read with), validated;
    raises ConfigError listing every problem. `environ`, when given, is the environment its connections
    resolve from instead of the process's. `check_mappings=False` skips the mapping files (extraction does not
    need them); `with_pipelines=False` reads the project file alone (`audit`, `credentials`)."""
    if not with_pipelines:
        project, problems = check_project_file(Path(root))
        if project is None:
            raise ConfigError("invalid project file:\n  " + "\n  ".join(map(str, problems)))
    else:
        loaded, problems = check_project(root, names, check_mappings=check_mappings)
        if problems or loaded is None:
            raise ConfigError("invalid project:\n  " + "\n  ".join(map(str, problems)))
        project = loaded
    return project if environ is None else replace(project, environ=environ)


def check_project(root: Path | str, names: Iterable[str] | None = None, *,
                  check_mappings: bool = True) -> tuple[Project | None, list[Problem]]:
    """Check the project file, every pipeline (or those named, plus what they read with), the references
    between them, their both-ways settings and the mapping files they name. Never needs credentials.
    The project (None when its file is invalid) holds the valid pipelines, in dependency order."""
    project, problems = check_project_file(Path(root))
    pipelines, found = check_pipelines(Path(root), project, names, check_mappings=check_mappings)
    if project is not None:
        project = replace(project, pipelines=tuple(pipelines))
    return project, problems + found


def add_pipelines(project: Project, names: Iterable[str] | None = None, *, check_mappings: bool = True) -> Project:
    """A project loaded without its pipelines (`with_pipelines=False`), with them; ConfigError listing every
    problem of the pipelines."""
    pipelines, problems = check_pipelines(project.root, project, names, check_mappings=check_mappings)
    if problems:
        raise ConfigError("invalid project:\n  " + "\n  ".join(map(str, problems)))
    return replace(project, pipelines=tuple(pipelines))


def check_pipelines(root: Path, project: Project | None, names: Iterable[str] | None = None, *,
                    check_mappings: bool = True) -> tuple[list[Pipeline], list[Problem]]:
    """The valid pipelines (those named, plus what they read with; default: all) in dependency order, and
    every problem of them; `project` (None: its file is invalid) for the connections they name."""
    by_stem = {p.stem: p for p in pipeline_files(root)}
    problems: list[Problem] = []
    wanted = list(names) if names else list(by_stem)
    for n in wanted:
        if n not in by_stem:
            problems.append(Problem("pipelines/", None, "", f"no pipeline '{n}'{did_you_mean(n, by_stem)}"))
    parsed: dict[str, tuple[Located | None, list[Problem]]] = {}

    def parse(name: str) -> tuple[Located | None, list[Problem]]:  # each file parsed once
        if name not in parsed:
            parsed[name] = parse_pipeline_file(by_stem[name], root)
        return parsed[name]

    loaded: dict[str, tuple[Pipeline | None, Located | None]] = {}
    queue = [n for n in wanted if n in by_stem]
    while queue:
        while queue:
            n = queue.pop(0)
            if n in loaded:
                continue
            pipeline, found, located = load_pipeline(by_stem[n], root, parse(n))
            problems += found
            loaded[n] = (pipeline, located)
            queue += [d for d in _reads_with(pipeline, located) if d in by_stem]
        queue = [n for n in by_stem if n not in loaded and _pairs_with(parse(n)[0], loaded)]
    valid = {n: p for n, (p, _) in loaded.items() if p is not None}
    for pipeline, located in loaded.values():
        if pipeline is not None and located is not None:
            problems += reference_problems(pipeline, located, root, by_stem, project, check_mappings)
            problems += _pair_problems(pipeline, located, root, valid, by_stem)
    problems += _cycle_problems(valid, {n: loc for n, (_, loc) in loaded.items()}, root)
    return order_by_dependencies(list(valid.values())), problems


def _reads_with(pipeline: Pipeline | None, located: Located | None) -> list[str]:
    """What a pipeline needs loaded with it (dependencies, its pair's other half), even when it is invalid."""
    if pipeline is not None:
        return list(pipeline.reads_with)
    data: dict[str, Any] = located.data if located is not None and isinstance(located.data, dict) else {}
    pair = data.get("pair")
    partner = pair.get("with") if isinstance(pair, dict) else None
    return [d for d in [*(data.get("depends_on") or []), partner] if isinstance(d, str)]


def _pairs_with(located: Located | None, loaded: Mapping[str, Any]) -> bool:
    """Whether a pipeline file's `pair.with` names a loaded pipeline: a run of either half reads both."""
    data = located.data if located is not None and isinstance(located.data, dict) else {}
    pair = data.get("pair")
    return isinstance(pair, dict) and pair.get("with") in loaded


def _pair_problems(pipeline: Pipeline, loc: Located, root: Path, valid: Mapping[str, Pipeline],
                   by_stem: Mapping[str, Path]) -> list[Problem]:
    """Both-ways settings naming an unknown pipeline, field, policy or side (`engine.pairs`)."""
    if pipeline.pair is None or (pipeline.pair.with_pipeline not in valid and pipeline.pair.with_pipeline in by_stem):
        return []  # the other half is invalid: its own problems say why
    from engine.pairs import pair_problems

    name = display_path(pipeline.path, root)
    return [Problem(name, loc.line(tuple(at.split("."))), at, message)
            for at, message in pair_problems(pipeline, valid, root)]


def _cycle_problems(specs: Mapping[str, Pipeline], located: Mapping[str, Located | None], root: Path) -> list[Problem]:
    problems, reported = [], set()
    for start in specs:
        stack: list[str] = []

        def visit(n: str, stack: list[str] = stack) -> list[str] | None:
            if n in stack:
                return stack[stack.index(n):] + [n]
            if n not in specs:
                return None
            stack.append(n)
            for d in specs[n].depends_on:
                if (cycle := visit(d)) is not None:
                    return cycle
            stack.pop()
            return None

        cycle = visit(start)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            first = cycle[0]
            loc = located.get(first)
            idx = specs[first].depends_on.index(cycle[1])
            problems.append(Problem(display_path(specs[first].path, root), loc.line(("depends_on", idx)) if loc else None,
                                    f"depends_on[{idx}]", "dependency cycle: " + " -> ".join(cycle)))
    return problems


def order_by_dependencies(specs: list[Pipeline]) -> list[Pipeline]:
    """Pipelines sorted so that every pipeline comes after those it depends on (ties by name)."""
    by_name = {s.name: s for s in specs}
    done: list[str] = []

    def visit(n: str, path: tuple[str, ...] = ()) -> None:
        if n in done or n not in by_name or n in path:
            return
        for d in sorted(by_name[n].depends_on):
            visit(d, path + (n,))
        done.append(n)

    for n in sorted(by_name):
        visit(n)
    return [by_name[n] for n in done]


