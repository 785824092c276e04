"""JAGGAER J1P simulator: OAuth2 tokens, invoices, purchase orders and company profiles on loopback.

`ml-connector sim jaggaer --seed 500 --random-seed 7` serves the default tenant at
`http://127.0.0.1:8443` (and at `/tenants/demo`). Knobs can be changed while it runs:
`curl -X PATCH localhost:8443/_sim/knobs -d '{"rate_limit": 5}'`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from simulators.http import HttpServer
from simulators.jaggaer.app import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from simulators.jaggaer.auth import TOKEN_PATH


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="listen port (default 8443)")
    parser.add_argument("--tenant", default="demo", help="default tenant, served at the root (default demo)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help=f"the tenant's client id (default {DEFAULT_CLIENT_ID})")
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET,
                        help="the tenant's client secret (default: the documented test secret, see README)")
    parser.add_argument("--seed", type=int, default=50, metavar="N",
                        help="generate N purchase orders, with suppliers and invoices in proportion (default 50)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--random-seed", type=int, default=7, help="seed of the data generator (default 7: repeatable)")
    seeds.add_argument("--random", dest="random_seed", action="store_const", const=None,
                       help="different data on every start")
    parser.add_argument("--history-days", type=float, default=30,
                        help="spread the seed's stamps over this many past days; 0 = all now (default 30)")
    parser.add_argument("--state", metavar="FILE", help="load tenants from FILE if it exists; save them there on exit")
    knobs = parser.add_argument_group("knobs (also PATCH /_sim/knobs at runtime)")
    knobs.add_argument("--page-size", type=int, default=100, help="records per list page (default 100)")
    knobs.add_argument("--token-lifetime", type=int, default=300, help="expires_in of tokens, seconds (default 300)")
    knobs.add_argument("--rate-limit", type=float, default=0, help="requests per second per token; 0 = off (default)")
    knobs.add_argument("--retry-after", type=int, default=2, help="Retry-After seconds on 429; 0 = no header (default 2)")
    knobs.add_argument("--returncode-type", choices=("number", "string", "mixed"), default="number")
    knobs.add_argument("--not-found-mode", choices=("envelope", "http404"), default="envelope")
    knobs.add_argument("--unauthorized-body", choices=("empty", "json"), default="empty")
    knobs.add_argument("--latency-ms", type=float, default=0, help="added to every API request")
    knobs.add_argument("--jitter-ms", type=float, default=0, help="plus uniform random 0..jitter")
    knobs.add_argument("--token-latency-ms", type=float, default=0, help="added to every token request")
    knobs.add_argument("--workers", type=int, default=0, help="concurrent API requests served; 0 = unlimited")
    knobs.add_argument("--error-rate", type=float, default=0, help="share of API requests answered 500/502/503")
    knobs.add_argument("--drop-before-rate", type=float, default=0, help="share dropped without an answer")
    knobs.add_argument("--drop-after-rate", type=float, default=0, help="share dropped after being applied")
    knobs.add_argument("--slow-rate", type=float, default=0, help="share answered only after --slow-seconds")
    knobs.add_argument("--slow-seconds", type=float, default=30)
    knobs.add_argument("--retryable-rate", type=float, default=0, help="share answered returnCode -998")
    knobs.add_argument("--dirty-data-rate", type=float, default=0,
                       help="share of generated lines/suppliers with a data-quality wart (default 0)")


KNOB_FLAGS = (
    "page_size", "token_lifetime", "rate_limit", "retry_after", "returncode_type", "not_found_mode",
    "unauthorized_body", "latency_ms", "jitter_ms", "token_latency_ms", "workers", "error_rate",
    "drop_before_rate", "drop_after_rate", "slow_rate", "slow_seconds", "retryable_rate", "dirty_data_rate",
)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from simulators.jaggaer import build_app
    from simulators.jaggaer.state import load_state, save_state

    knobs = {name: getattr(args, name) for name in KNOB_FLAGS}
    app = build_app(args.seed, args.random_seed, args.history_days, args.tenant, args.client_id,
                    args.client_secret, **knobs)
    if args.state and load_state(app, args.state):
        print(f"loaded state from {args.state}", file=sys.stderr)
    app.state_file = args.state
    server = HttpServer(app, host=args.host, port=args.port, on_too_large=app.too_large)
    tenant = app.tenant()
    print(
        f"JAGGAER simulator on http://{args.host}:{args.port}  tenant {tenant.name!r} "
        f"(also /tenants/{tenant.name}), client id {tenant.client_id!r}\n"
        f"  token URL: http://{args.host}:{args.port}{TOKEN_PATH}\n"
        f"  {len(tenant.store.orders)} purchase orders, {len(tenant.store.invoices)} invoices, "
        f"{len(tenant.store.suppliers)} company profiles",
        file=sys.stderr, flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(server.serve_forever())
    finally:
        if args.state:
            save_state(app, args.state)
            print(f"saved state to {args.state}", file=sys.stderr)
    return 0
