"""The project file `ml-connector.yaml`: project name, state file, connection profiles.

Any value may be `{env: NAME, default: ...}`. Secrets (`client_secret`, `password`) may only be
`{env: NAME}`: never literal in YAML, never echoed in a message. A connection may also say
`credentials: {customer: NAME}`: the values it does not set come from that customer's profile of the
connection's kind in the encrypted credential store (`engine.credentials`). Checking the file needs no
credentials; `Project.connection()` resolves a profile from the environment (and the store) when a
command runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ConfigError
from engine.problems import Problem
from engine.spec import PROJECT_FILE, SCHEMAS_DIR, load_located, schema_problems

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


def load_project(root: Path | str = ".", *, environ: Mapping[str, str] | None = None) -> Project:
    """The project in `root`; raises ConfigError listing every problem of its project file. `environ`, when
    given, is the environment its connections resolve from instead of the process's."""
    project, problems = check_project_file(Path(root))
    if project is None:
        raise ConfigError("invalid project file:\n  " + "\n  ".join(map(str, problems)))
    return project if environ is None else replace(project, environ=environ)
