"""`ml-connector.yaml` connections with `credentials: {customer: NAME}`: the stored profile fills what the
YAML does not set; a project names one customer per connection and can never resolve another's."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from engine import credentials
from engine.errors import ConfigError
from engine.project import TOKEN_PATH, check_project_file, load_project

SAPB1 = {"service_root": "https://b1.acme.example.com:50000/b1s/v2", "company_db": "ACME", "username": "sync",
         "password": "acme-Pa55word!"}
GLOBEX_SAPB1 = {"service_root": "https://b1.globex.example.com:50000/b1s/v1", "company_db": "GLOBEX",
                "username": "globex-sync", "password": "globex-Pa55word!"}
JAGGAER = {"base_url": "https://acme.api.jaggaer.com", "client_id": "acme-id", "client_secret": "acme-client-s3cret"}


def project(root: Path, connections: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ml-connector.yaml").write_text(
        "project: acme\nstate: var/state.duckdb\nconnections:\n" + textwrap.indent(textwrap.dedent(connections), "  ")
    )
    return root


ACME = """\
    sapb1:
      kind: sapb1
      credentials: {customer: acme}
      max_concurrency: 4
    jaggaer:
      kind: jaggaer
      credentials: {customer: acme}
      token_url: null
    """


def test_a_connection_takes_its_values_from_the_store(store: Path, tmp_path: Path) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    credentials.set_profile("acme", "jaggaer", JAGGAER)
    p = load_project(project(tmp_path / "p", ACME))
    assert p.connection("sapb1") == {"kind": "sapb1", "max_concurrency": 4, **SAPB1}
    assert p.connection("jaggaer") == {"kind": "jaggaer", **JAGGAER, "token_url": JAGGAER["base_url"] + TOKEN_PATH}
    credentials.set_profile("acme", "jaggaer", {**JAGGAER, "token_url": "https://sso.acme.example.com/token"})
    assert p.connection("jaggaer")["token_url"] == "https://sso.acme.example.com/token"  # YAML null: not set


def test_yaml_and_environment_values_win(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    p = load_project(project(tmp_path / "p", """\
        sapb1:
          kind: sapb1
          credentials: {customer: acme}
          company_db: ACME_TEST
          password: {env: ACME_TEST_PASSWORD}
        """))
    with pytest.raises(ConfigError, match="ACME_TEST_PASSWORD, which is not set"):
        p.connection("sapb1")
    monkeypatch.setenv("ACME_TEST_PASSWORD", "from-the-env-123")
    assert p.connection("sapb1") == {**SAPB1, "kind": "sapb1", "company_db": "ACME_TEST", "password": "from-the-env-123"}


def test_a_project_never_resolves_another_customers_credentials(store: Path, tmp_path: Path) -> None:
    credentials.set_profile("globex", "sapb1", GLOBEX_SAPB1)
    p = load_project(project(tmp_path / "p", ACME))
    with pytest.raises(ConfigError, match="connection 'sapb1': the credential store .* has no customer 'acme'") as exc:
        p.connection("sapb1")
    assert "globex-Pa55word!" not in str(exc.value)
    # B's record copied under A's name in the file: decryption fails, B's password never comes back
    credentials.set_profile("acme", "sapb1", SAPB1)
    data = json.loads(store.read_bytes())
    data["customers"]["acme"]["sapb1"] = data["customers"]["globex"]["sapb1"]
    store.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="connection 'sapb1': the sapb1 credentials of customer 'acme' .* "
                                          "fail their integrity check") as exc:
        p.connection("sapb1")
    assert "globex" not in str(exc.value).replace(str(store), "")


def test_the_profile_kind_must_match_the_connection(store: Path, tmp_path: Path) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    p = load_project(project(tmp_path / "p", ACME))
    with pytest.raises(ConfigError, match="connection 'jaggaer': customer 'acme' has no jaggaer profile .*it has: sapb1"):
        p.connection("jaggaer")


def test_checking_the_project_needs_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(credentials.STORE_ENV, str(tmp_path / "missing.enc"))
    monkeypatch.setenv(credentials.KEY_FILE_ENV, str(tmp_path / "missing-key"))
    p, problems = check_project_file(project(tmp_path / "p", ACME))
    assert problems == [] and p is not None
    with pytest.raises(ConfigError, match="there is no credential store at"):
        p.connection("sapb1")


@pytest.mark.parametrize(("connections", "expected"), [
    ("sapb1:\n  kind: sapb1\n  credentials: {customer: ../globex}\n",
     "connections.sapb1.credentials.customer: '../globex' is not valid: a customer name in the credential store"),
    ("sapb1:\n  kind: sapb1\n  credentials: {customer: acme, store: /tmp/x}\n",
     "connections.sapb1.credentials.store: unknown field 'store'"),
    ("sapb1:\n  kind: sapb1\n  credentials: {customer: {env: CUSTOMER}}\n",
     "connections.sapb1.credentials.customer: expected"),
    ("sapb1:\n  kind: sapb1\n  credentials: {customer: acme}\n  password: literal-secret\n",
     "connections.sapb1.password: secrets come only from the environment"),
    ("sapb1:\n  kind: sapb1\n  service_root: https://b1.example.com:50000/b1s/v2\n  company_db: X\n",
     "connections.sapb1.username: required field is missing"),  # without credentials: every value as before
    ("jaggaer:\n  kind: jaggaer\n  base_url: https://x.example.com\n  client_secret: {env: S}\n",
     "connections.jaggaer.client_id: required field is missing"),
])
def test_the_schema(tmp_path: Path, connections: str, expected: str) -> None:
    _, problems = check_project_file(project(tmp_path / "p", connections))
    assert any(expected in str(problem) for problem in problems), problems
    assert "literal-secret" not in str(problems)
