"""`ml-connector sim sapb1|jaggaer`: run a local simulator in the foreground."""

from __future__ import annotations

import argparse
import importlib

# simulator name -> module exposing `add_arguments(parser)` and `run(args) -> int`
SIMULATORS = {
    "sapb1": "simulators.sapb1.cli",
    "jaggaer": "simulators.jaggaer.cli",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sim", help="run a local simulator of SAP B1 or JAGGAER")
    sims = parser.add_subparsers(dest="simulator", metavar="SIMULATOR", required=True)
    for name, module_name in SIMULATORS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        sub = sims.add_parser(name, help=module.__doc__.strip().splitlines()[0] if module.__doc__ else name)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
