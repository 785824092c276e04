"""`ml-connector credentials set|list|show|delete|rotate-key`: the encrypted credential store.

    ml-connector credentials set acme sapb1 --service-root URL --company-db DB --username U
    ml-connector credentials set acme jaggaer --base-url URL [--token-url URL] --client-id ID
    ml-connector credentials list | show acme | delete acme [KIND] | rotate-key

The secret (SAP B1 password, JAGGAER client secret) is never an argument: it is asked for without
echo when stdin is a terminal, else read from stdin (`printf %s "$PW" | ml-connector credentials set ...`).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import sys
from collections.abc import Iterator

from engine import credentials, exitcodes

# The `set` options of each kind: field → flag. Secrets have no flag on purpose.
OPTIONS = {
    "sapb1": {"service_root": "--service-root", "company_db": "--company-db", "username": "--username"},
    "jaggaer": {"base_url": "--base-url", "token_url": "--token-url", "client_id": "--client-id"},
}
SECRET_OF = {"sapb1": "password", "jaggaer": "client_secret"}
STORE_HELP = (f"store: ${credentials.STORE_ENV} (default ~/.config/ml-connector/credentials.json.enc)\n"
              f"key:   ${credentials.KEY_ENV}, else the key file ${credentials.KEY_FILE_ENV}\n"
              "       (default ~/.config/ml-connector/key, readable only by its owner)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "credentials", help="the encrypted credential store: set, list, show, delete, rotate-key",
        description="Per customer, an SAP B1 and a JAGGAER connection profile, encrypted (AES-256-GCM).\n"
                    "A project connection uses one with `credentials: {customer: NAME}`.\n\n" + STORE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    verbs = parser.add_subparsers(dest="action", metavar="ACTION")

    put = verbs.add_parser(
        "set", help="store (replace) a customer's sapb1 or jaggaer profile",
        description="Store (replace) a customer's profile. The secret (password / client secret) is asked for "
                    "when stdin is a terminal, else read from stdin; it is never an argument.",
    )
    put.add_argument("customer", metavar="CUSTOMER")
    put.add_argument("kind", choices=credentials.KINDS, metavar="KIND", help="sapb1 or jaggaer")
    put.add_argument("--service-root", help="sapb1: the full Service Layer URL, e.g. https://b1.example.com:50000/b1s/v2")
    put.add_argument("--company-db", help="sapb1: the company database, e.g. SBODEMOUS")
    put.add_argument("--username", help="sapb1: the Service Layer user")
    put.add_argument("--base-url", help="jaggaer: the tenant's API base URL")
    put.add_argument("--token-url", help="jaggaer: the token endpoint (default: <base-url>/auth/realms/...)")
    put.add_argument("--client-id", help="jaggaer: the OAuth client id")
    put.add_argument("--allow-http", action="store_true",
                     help="sapb1: accept plain http to a non-loopback host (the password travels unencrypted)")
    put.set_defaults(func=run_set)

    show_all = verbs.add_parser("list", help="the customers in the store and their profiles (needs no key)")
    show_all.add_argument("--json", action="store_true", help="print one JSON document")
    show_all.set_defaults(func=run_list)

    show = verbs.add_parser("show", help="a customer's profiles, secrets shown only as 'set'")
    show.add_argument("customer", metavar="CUSTOMER")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(func=run_show)

    drop = verbs.add_parser("delete", help="remove a customer's profile of KIND, or all of them")
    drop.add_argument("customer", metavar="CUSTOMER")
    drop.add_argument("kind", nargs="?", choices=credentials.KINDS, metavar="KIND", help="sapb1 or jaggaer (default: both)")
    drop.set_defaults(func=run_delete)

    rotate = verbs.add_parser("rotate-key", help="re-encrypt every profile with a new key; replaces the key file")
    rotate.set_defaults(func=run_rotate)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return exitcodes.USAGE


def run_set(args: argparse.Namespace) -> int:
    values: dict[str, str | None] = {}
    for kind, options in OPTIONS.items():
        for field, flag in options.items():
            given = getattr(args, field)
            if kind != args.kind and given is not None:
                print(f"usage: {flag} is for {kind} profiles, not {args.kind}", file=sys.stderr)
                return exitcodes.USAGE
            if kind == args.kind:
                values[field] = given
    missing = [flag for field, flag in OPTIONS[args.kind].items()
               if not values.get(field) and field not in credentials.OPTIONAL]
    if missing:
        print(f"usage: a {args.kind} profile needs {', '.join(missing)}", file=sys.stderr)
        return exitcodes.USAGE
    secret_field = SECRET_OF[args.kind]
    # everything but the secret is checked before anyone types it
    with _quiet_url_log():
        credentials.validate_profile(args.kind, {**values, secret_field: "-"}, allow_http=args.allow_http)
    secret = _read_secret(secret_field.replace("_", " "))
    if not secret:
        print(f"usage: no {secret_field.replace('_', ' ')} given (type it, or pipe it on stdin)", file=sys.stderr)
        return exitcodes.USAGE
    values[secret_field] = secret
    if credentials.needs_key():
        created = credentials.generate_key()
        print(f"created a new key in {created} (mode 0600): keep a copy somewhere safe, "
              "without it the stored credentials cannot be decrypted", file=sys.stderr)
    with _quiet_url_log():
        stored = credentials.set_profile(args.customer, args.kind, values, allow_http=args.allow_http)
    for warning in stored.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{'replaced' if stored.replaced else 'stored'} the {stored.kind} profile of {stored.customer} in {stored.path}")
    return exitcodes.OK


def _read_secret(what: str) -> str:
    """Without echo from a terminal (asked twice), else all of stdin less its line ending."""
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(f"{what}: ")
        if first and getpass.getpass(f"{what} (again): ") != first:
            print(f"the two {what}s differ", file=sys.stderr)
            return ""
        return first
    text = sys.stdin.read() if sys.stdin is not None else ""
    return text.rstrip("\r\n")


@contextlib.contextmanager
def _quiet_url_log() -> Iterator[None]:
    """`ServiceRoot.parse` logs its warnings; `set` prints them itself, once, so no lastResort echo."""
    logger = logging.getLogger("engine.sapb1")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def run_list(args: argparse.Namespace) -> int:
    customers = credentials.list_customers()
    if args.json:
        print(json.dumps({"store": str(credentials.default_store_path()), "customers": customers}))
    elif not customers:
        print(f"no customers in {credentials.default_store_path()}", file=sys.stderr)
    else:
        width = max(map(len, customers))
        for name, kinds in customers.items():
            print(f"{name:<{width}}  {', '.join(kinds)}")
    return exitcodes.OK


def run_show(args: argparse.Namespace) -> int:
    profiles = credentials.describe(args.customer)
    if args.json:
        print(json.dumps({"customer": args.customer, "profiles": profiles}))
        return exitcodes.OK
    print(args.customer)
    for kind, values in profiles.items():
        print(f"  {kind}")
        for field, value in values.items():
            print(f"    {field:<13} {value}")
    return exitcodes.OK


def run_delete(args: argparse.Namespace) -> int:
    removed = credentials.delete(args.customer, args.kind)
    print(f"deleted the {' and '.join(removed)} profile{'s' if len(removed) > 1 else ''} of {args.customer}")
    return exitcodes.OK


def run_rotate(args: argparse.Namespace) -> int:
    rotated = credentials.rotate_key()
    print(f"re-encrypted {rotated.records} profile(s) of {rotated.customers} customer(s) in {rotated.path}; "
          f"the new key is in {rotated.key_file}")
    if rotated.key_from_env:
        print(f"warning: {credentials.KEY_ENV} is set and still holds the old key: set it from {rotated.key_file} "
              "(or unset it) before the next command", file=sys.stderr)
    return exitcodes.OK
