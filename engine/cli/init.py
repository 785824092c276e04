"""`ml-connector init DIR`: create a project (the demo project's pipelines, mappings, rules, fixtures
and schemas) that `validate` and `test-mappings` accept as it is."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from engine.scaffold import init_project

NEXT_STEPS = """\
next steps:
  cd {dir}
  # connection settings: edit ml-connector.yaml, or set JAGGAER_BASE_URL, SAPB1_SERVICE_ROOT, SAPB1_COMPANY_DB
  export JAGGAER_CLIENT_ID=... JAGGAER_CLIENT_SECRET=... SAPB1_USERNAME=... SAPB1_PASSWORD=...
  #   (or keep them in the encrypted store: ml-connector credentials set)
  ml-connector validate         # specs, mappings and references; no credentials needed
  ml-connector test-mappings    # the mapping fixtures in mappings/fixtures/
  ml-connector check            # log in to SAP B1, get a JAGGAER token
  ml-connector run              # extract -> plan -> load"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init", help="create a new project (pipelines, mappings, schemas) in DIR",
        description="Create a project in DIR from the demo project: ml-connector.yaml, pipelines/, mappings/ "
                    "(rule tables and fixtures), schemas/ and a .gitignore keeping the state and secrets out of git.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="the project directory (created if missing)")
    parser.add_argument("--name", help="the project's name (default: the directory's name)")
    parser.add_argument("--force", action="store_true",
                        help="write into a directory that is not empty (files of the same name are replaced)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    written = init_project(args.directory, name=args.name, force=args.force)
    folders = Counter(p.relative_to(args.directory).parts[0] for p in written)
    parts = ", ".join(f"{top}/ ({n})" if (args.directory / top).is_dir() else top for top, n in folders.items())
    print(f"created project in {args.directory}: {len(written)} files: {parts}")
    print(NEXT_STEPS.format(dir=args.directory))
    return 0
