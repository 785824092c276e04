"""A run in its own process, for the exclusion and crash tests: `python -m tests.e2e._run_child ROOT WAIT`.

The connection settings come from the environment (as `ml-connector run` reads them). Prints the run's
writes and outcome counts as one JSON line; exit 3 when another run held the lock.
"""

from __future__ import annotations

import json
import sys

from engine.locks import RunLocked
from engine.project import load_project
from engine.runner import run_pipelines


def main() -> int:
    root, wait = sys.argv[1], float(sys.argv[2])
    try:
        report = run_pipelines(load_project(root), wait=wait)
    except RunLocked as exc:
        print(json.dumps({"locked": str(exc)}))
        return 3
    print(json.dumps({"run_id": report.run_id, "writes": report.writes, "aborted": report.aborted,
                      "outcomes": {p.name: p.outcomes for p in report.pipelines}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
