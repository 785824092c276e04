"""Child process for the crash test: extract one pipeline, printing progress lines, until killed."""

from __future__ import annotations

import sys
from pathlib import Path

import engine.spec
from engine.extract import extract_pipelines
from engine.project import load_project

if __name__ == "__main__":
    engine.spec._mapping_problems = lambda path, target_entity: []  # the test project has stand-in mappings
    project = load_project(Path(sys.argv[1]))

    def progress(pipeline: str, done: int, total: int | None) -> None:
        print(f"read {done}", flush=True)

    extract_pipelines(project, [sys.argv[2]], progress=progress)
    print("finished", flush=True)
