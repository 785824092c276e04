"""Connection values from the environment reach every verb typed the same way (issue 8: `verify_tls:
{env: X}` passed `check` but crashed `run` with a raw string given to httpx)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from engine.checks import check_connections
from engine.project import load_project
from engine.runner import run_pipelines
from tests.e2e.project_fixture import start_stack


def test_verify_tls_from_the_environment_works_for_check_and_run(tmp_path):
    with start_stack(tmp_path, seed=4) as stack:
        stack.edit("ml-connector.yaml", "verify_tls: true", "verify_tls: {env: SAPB1_VERIFY_TLS, default: true}")
        environ = {**stack.environ, "SAPB1_VERIFY_TLS": "false"}
        project = replace(load_project(stack.root), environ=environ)
        assert all(c.ok for c in asyncio.run(check_connections(project))), "check passes"
        report = run_pipelines(load_project(stack.root, environ=environ))
        assert report.aborted is None and report.writes > 0, "run passes too"
