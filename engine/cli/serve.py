"""`ml-connector serve`: run every customer's pipelines on their cadence until SIGTERM (engine.serve)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from engine import exitcodes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="run pipelines on their schedules, for one or many customers, until stopped",
        description="Run each pipeline on its `schedule:` (every ... or cron) for one or many customer projects, "
                    "one run at a time per project (a busy project skips the tick), failed runs retried with "
                    "back-off. /healthz and Prometheus /metrics on 127.0.0.1. SIGTERM ends runs in progress "
                    "cleanly (their writes stay journalled) and exits.",
        epilog="Environment: ML_CONNECTOR_WEBHOOK_KEY sets the webhooks' HMAC key (default: a random one per start).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("customers")
    where.add_argument("--workspace", type=Path, metavar="DIR",
                       help="serve every subdirectory of DIR holding ml-connector.yaml (one customer each)")
    where.add_argument("--project", type=Path, action="append", default=[], metavar="DIR",
                       help="serve this project (repeatable; default: . when no --workspace)")
    parser.add_argument("--every", default="15m", metavar="DURATION",
                        help="cadence of pipelines without a `schedule:` (default 15m)")
    parser.add_argument("--port", type=port_number, default=9464,
                        help="port of /healthz and /metrics on 127.0.0.1 (default 9464; 0: any free port)")
    parser.add_argument("--max-parallel", type=positive, default=4, metavar="N",
                        help="runs in progress at once, all customers together (default 4)")
    parser.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                        help="on SIGTERM, how long runs in progress may take to stop before they are killed (30)")
    parser.add_argument("--run-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop a run still going after this long, and retry it with back-off (default: none)")
    parser.add_argument("--retry-base", type=float, default=2.0, metavar="SECONDS",
                        help="first retry delay after a failed run; doubles per failure (default 2)")
    parser.add_argument("--retry-max", type=float, default=300.0, metavar="SECONDS",
                        help="longest retry delay (default 300)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text lines, or one JSON object per line (default text)")
    hooks = parser.add_argument_group("SAP B1 webhooks (Service Layer /b1s/v2, FP 2602+)")
    hooks.add_argument("--webhooks", action="store_true",
                       help="subscribe to SAP B1 change events and run the pipelines concerned early (polling stays)")
    hooks.add_argument("--webhook-url", metavar="URL",
                       help="base URL SAP B1 calls (default: this serve's http://127.0.0.1:PORT); "
                            "/b1-events/<customer> is appended")
    hooks.add_argument("--webhook-no-verify-certificate", action="store_true",
                       help="let SAP B1 accept a self-signed certificate at --webhook-url")
    parser.set_defaults(func=serve)


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {value}")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def serve(args: argparse.Namespace) -> int:
    import os

    from engine.serve.logs import configure, event
    from engine.serve.scheduler import RetryPolicy, ScheduleError, parse_duration
    from engine.serve.service import Serve, ServeOptions
    from engine.serve.workspace import WorkspaceError, discover, load_customer

    log = configure(args.log_format)
    try:
        every = parse_duration(args.every)
        projects = args.project or ([] if args.workspace else [Path(".")])
        customers = discover(args.workspace, projects)
    except (ScheduleError, WorkspaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    plans = [load_customer(c, default_every=every) for c in customers]
    if not any(p.ok for p in plans):
        for plan in plans:
            event(log, "customer_invalid", 40, customer=plan.customer.id, problems=plan.problems)
        print("error: no customer can be served (see the problems above)", file=sys.stderr)
        return exitcodes.ERROR
    options = ServeOptions(port=args.port, max_parallel=args.max_parallel, grace=args.grace,
                           run_timeout=args.run_timeout, retry=RetryPolicy(base=args.retry_base, cap=args.retry_max),
                           webhooks=args.webhooks, webhook_url=args.webhook_url,
                           webhook_key=os.environ.get("ML_CONNECTOR_WEBHOOK_KEY") or None,
                           verify_certificate=not args.webhook_no_verify_certificate)
    try:
        service = Serve(plans, options, log)
    except OSError as exc:  # the port is taken
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.ERROR
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: service.stop())
    try:
        service.start()
        service.wait()
    finally:
        service.shutdown()
    return exitcodes.OK
