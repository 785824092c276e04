"""Fixtures shared with the plan tests: a throw-away project (mappings/, mappings/rules/)."""

from tests.engine.plan.conftest import project  # noqa: F401
