"""SAP Business One Service Layer simulator (`ml-connector sim sapb1`).

Runs in the foreground until interrupted; prints `listening on <url>` once the socket is bound
(with `--port 0`, the ephemeral port chosen). Every knob of `SapKnobs` is also a flag
(`--latency-ms 20 --workers 40 --error-rate 0.05 ...`) and can be changed at runtime through
`PATCH /_sim/knobs`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys

from simulators.sapb1.config import KNOB_HELP, REALISTIC_PROFILE, SapKnobs, SimConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimConfig()
    parser.add_argument("--host", default=defaults.host, help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=defaults.port, help="listen port (default 50000; 0 = any)")
    parser.add_argument("--company", default=defaults.company, help="CompanyDB accepted by Login")
    parser.add_argument("--user", default=defaults.user, help="UserName accepted by Login")
    parser.add_argument("--password", default=defaults.password, help="Password accepted by Login")
    parser.add_argument("--session-timeout", type=float, default=defaults.session_timeout,
                        help="idle session timeout in seconds (default 1800)")
    parser.add_argument("--seed", choices=("demo", "empty"), default=defaults.seed, help="initial data")
    parser.add_argument("--state", default=None, help="JSON file that keeps the data across restarts")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a generated self-signed certificate")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help="request bodies above this answer 413 (default 50 MB)")
    knobs = parser.add_argument_group("realism knobs (all off by default; also PATCH /_sim/knobs)")
    knobs.add_argument("--realistic", action="store_true",
                       help="login 3 s, writes 1 s + 50 ms per line, 40 workers (explicit flags win)")
    for f in dataclasses.fields(SapKnobs):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            knobs.add_argument(flag, dest=f"knob_{f.name}", action="store_true", default=None,
                               help=KNOB_HELP.get(f.name))
        else:
            kind = {"int": int, "float": float}.get(str(f.type), float)
            if f.name == "random_seed":
                kind = int
            knobs.add_argument(flag, dest=f"knob_{f.name}", type=kind, default=None, metavar="N",
                               help=KNOB_HELP.get(f.name))


def config_from_args(args: argparse.Namespace) -> tuple[SimConfig, dict]:
    config = SimConfig(
        host=args.host, port=args.port, company=args.company, user=args.user, password=args.password,
        session_timeout=args.session_timeout, seed=args.seed, state=args.state, tls=args.tls,
        max_body_bytes=args.max_body_bytes,
    )
    knobs = dict(REALISTIC_PROFILE) if getattr(args, "realistic", False) else {}
    knobs.update({name[5:]: value for name, value in vars(args).items()
                  if name.startswith("knob_") and value is not None})
    return config, knobs


def run(args: argparse.Namespace) -> int:
    from simulators.sapb1 import build_server

    config, knobs = config_from_args(args)
    server, _app = build_server(config, knobs)

    async def main() -> None:
        await server.start()
        print(f"listening on {server.scheme}://{config.host}:{server.port}/b1s/v2", flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m simulators.sapb1.cli", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
