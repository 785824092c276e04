"""`ml-connector.yaml`: structure, secrets only from the environment, URL rules, env resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.project import check_project_file, load_project

from .conftest import edit, line_of


def test_literal_secret_is_refused_without_echoing_it(project: Path) -> None:
    f = project / "ml-connector.yaml"
    edit(f, "client_secret: {env: JAGGAER_CLIENT_SECRET}", "client_secret: hunter2-very-secret")
    _, problems = check_project_file(project)
    line = line_of(f, "client_secret")
    assert [str(p) for p in problems] == [
        f"ml-connector.yaml:{line}: connections.jaggaer.client_secret: secrets come only from the environment: "
        "write {env: NAME} (no literal value, no default)"
    ]
    assert "hunter2" not in str(problems)


def test_secret_default_is_refused(project: Path) -> None:
    edit(project / "ml-connector.yaml", "password: {env: SAPB1_PASSWORD}", "password: {env: SAPB1_PASSWORD, default: manager}")
    _, problems = check_project_file(project)
    assert len(problems) == 1 and "secrets come only from the environment" in str(problems[0])
    assert "manager" not in str(problems[0])


def test_plain_http_only_on_loopback(project: Path) -> None:
    f = project / "ml-connector.yaml"
    edit(f, '"http://127.0.0.1:8443"', '"http://tenant.example.com"')
    _, problems = check_project_file(project)
    assert [str(p) for p in problems] == [
        f"ml-connector.yaml:{line_of(f, 'base_url')}: connections.jaggaer.base_url: "
        "'http://tenant.example.com': plain http is allowed only for a loopback host; use https"
    ]


def test_unknown_connection_key_and_kind(project: Path) -> None:
    f = project / "ml-connector.yaml"
    edit(f, "    max_concurrency: 8\n", "    max_concurrence: 8\n")
    edit(f, "kind: sapb1", "kind: sap")
    _, problems = check_project_file(project)
    text = [str(p) for p in problems]
    assert f"ml-connector.yaml:{line_of(f, 'max_concurrence')}: connections.jaggaer.max_concurrence: unknown field 'max_concurrence' (did you mean 'max_concurrency'?)" in text
    assert any(f"ml-connector.yaml:{line_of(f, 'kind: sap')}: connections.sapb1.kind: 'sap' must be one of 'jaggaer', 'sapb1'" in t for t in text)


def test_env_resolution(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = load_project(project)
    assert p.state_path == project / "var" / "state.duckdb"
    assert p.dlt_dir == project / "var" / "dlt"
    with pytest.raises(ConfigError, match="JAGGAER_CLIENT_ID, which is not set"):
        p.connection("jaggaer")
    monkeypatch.setenv("JAGGAER_CLIENT_ID", "demo-client")
    monkeypatch.setenv("JAGGAER_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("JAGGAER_BASE_URL", "https://prep-reg02.api.jaggaer.com/")
    conn = p.connection("jaggaer")
    assert conn["base_url"] == "https://prep-reg02.api.jaggaer.com"
    assert conn["token_url"] == "https://prep-reg02.api.jaggaer.com/auth/realms/J1p-integrations/protocol/openid-connect/token"
    assert conn["client_secret"] == "s3cret"
    monkeypatch.setenv("JAGGAER_BASE_URL", "https://user:pw@tenant.example.com")
    with pytest.raises(ConfigError, match="user-info") as exc:
        p.connection("jaggaer")
    assert "pw@" not in str(exc.value)


def test_missing_project_file(tmp_path: Path) -> None:
    _, problems = check_project_file(tmp_path)
    assert "no ml-connector.yaml" in str(problems[0])


def test_sapb1_service_root_is_checked(project: Path) -> None:
    f = project / "ml-connector.yaml"
    edit(f, '"http://127.0.0.1:50000/b1s/v2"', '"http://127.0.0.1:50000/b1s/v3"')
    _, problems = check_project_file(project)
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"ml-connector.yaml:{line_of(f, 'service_root')}: connections.sapb1.service_root: ")
