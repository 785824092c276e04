"""`ml-connector check [CONNECTION...]`: can we reach and log in to every configured system?

SAP B1: one Login (then Logout) per `kind: sapb1` connection, reporting B1's version and session
timeout. JAGGAER: one token request per `kind: jaggaer` connection. Nothing is read or written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine import exitcodes
from engine.errors import ConnectorError
from engine.project import Project, load_project


@dataclass(frozen=True)
class ConnectionCheck:
    name: str
    kind: str
    ok: bool
    detail: str


async def check_sapb1(name: str, profile: dict[str, Any]) -> ConnectionCheck:
    from engine.sapb1 import SapB1Client

    client = SapB1Client.from_profile(profile)
    async with client:
        info = await client.login()
    notes = "".join(f"; warning: {w}" for w in client.root.warnings)
    detail = (
        f"logged in to {client.root} as {profile['username']}@{profile['company_db']}: "
        f"B1 version {info.b1_version}, session timeout {info.session_timeout_minutes} min{notes}"
    )
    return ConnectionCheck(name, "sapb1", True, detail)


async def check_jaggaer(name: str, profile: dict[str, Any]) -> ConnectionCheck:
    from engine.jaggaer.client import JaggaerSettings, fetch_token

    settings = JaggaerSettings.from_profile(name, profile)
    await fetch_token(settings)
    return ConnectionCheck(name, "jaggaer", True, f"token endpoint {settings.token_url} issued a token")


CHECKS = {"sapb1": check_sapb1, "jaggaer": check_jaggaer}


async def check_connections(project: Project, names: list[str] | None = None) -> list[ConnectionCheck]:
    """Check the named connections (default: all), concurrently; never raises for one failing system."""

    async def one(name: str) -> ConnectionCheck:
        kind = str(project.connections.get(name, {}).get("kind", "?"))
        try:
            profile = project.connection(name)
            check = CHECKS.get(kind)
            if check is None:
                return ConnectionCheck(name, kind, False, f"unknown connection kind {kind!r}")
            return await check(name, profile)
        except ConnectorError as exc:
            return ConnectionCheck(name, kind, False, str(exc))
        except Exception as exc:  # a check must report, not crash: keep the type, never a traceback
            return ConnectionCheck(name, kind, False, f"{type(exc).__name__}: {exc}")

    return list(await asyncio.gather(*(one(name) for name in (names or list(project.connections)))))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="log in to each SAP B1 connection and get a JAGGAER token",
        description="Log in to each SAP B1 connection and get a JAGGAER token; nothing is read or written.",
        epilog="exit codes: 0 every connection checked is ok, 1 one failed (or the project is invalid), 2 usage",
    )
    parser.add_argument("connections", nargs="*", metavar="CONNECTION", help="connections to check (default: all)")
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: .)")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON document on stdout: {"ok", "connections": [{name, kind, ok, detail}]}')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """One line per connection (failures on stderr) or one JSON document; exit 1 when any failed."""
    project = load_project(args.project)
    results = asyncio.run(check_connections(project, args.connections or None))
    ok = all(result.ok for result in results)
    if args.json:
        print(json.dumps({"ok": ok, "connections": [asdict(r) for r in results]}))
    else:
        for result in results:
            stream = sys.stdout if result.ok else sys.stderr
            print(f"{'ok' if result.ok else 'FAILED'}  {result.name} ({result.kind}): {result.detail}", file=stream)
    return exitcodes.OK if ok else exitcodes.ERROR
