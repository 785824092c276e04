"""The encrypted credential store: per customer, an SAP B1 and a JAGGAER connection profile.

    set_profile("acme", "sapb1", {"service_root": "https://b1.acme.com:50000/b1s/v2",
                                  "company_db": "ACME", "username": "sync", "password": "..."})
    get_profile("acme", "sapb1")     # plaintext values, for the engine
    describe("acme")                 # the same without secrets: {"sapb1": {..., "password": "set"}}

The store is one JSON file (`$ML_CONNECTOR_CREDENTIALS`, default
`~/.config/ml-connector/credentials.json.enc`, or `path=`). Customer names and profile kinds are
visible in it; every profile's values are one AES-256-GCM record whose associated data is
`(customer, kind)`, so a record copied under another customer (or kind) fails to decrypt: a
pipeline of customer A can never be handed customer B's credentials. A key-check record tells a
wrong key apart from a tampered record. Writes go to a temporary file in the same directory (mode
0600) that replaces the store (`os.replace`), under a `flock` beside it.

The key (32 bytes, urlsafe base64) comes from `$ML_CONNECTOR_KEY`, else from the key file
(`$ML_CONNECTOR_KEY_FILE`, default `~/.config/ml-connector/key`), which must be readable only by
its owner. `generate_key()` creates the key file; `rotate_key()` re-encrypts every record with a
new key and replaces the key file.

Every failure is a `ConfigError` whose message names the field, file or variable to fix; no
message ever holds a secret or the key. Functions return values and never print.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import ConfigError

STORE_ENV = "ML_CONNECTOR_CREDENTIALS"
KEY_ENV = "ML_CONNECTOR_KEY"
KEY_FILE_ENV = "ML_CONNECTOR_KEY_FILE"
CONFIG_DIR = Path("~/.config/ml-connector")
FORMAT = "ml-connector credential store"
VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
CUSTOMER_MAX = 64

# Fields of each profile kind, in display order; secrets are never returned by `describe`.
FIELDS: dict[str, tuple[str, ...]] = {
    "sapb1": ("service_root", "company_db", "username", "password"),
    "jaggaer": ("base_url", "token_url", "client_id", "client_secret"),
}
OPTIONAL = frozenset({"token_url"})
SECRETS = frozenset({"password", "client_secret"})
KINDS = tuple(FIELDS)

_KEY_CHECK = b"ml-connector credential store key check"
_KEY_CHECK_AAD = b"ml-connector/credentials/v1/key-check"


# -- paths and keys --------------------------------------------------------------------------------

def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$ML_CONNECTOR_CREDENTIALS`, else `~/.config/ml-connector/credentials.json.enc`."""
    env = os.environ if environ is None else environ
    configured = env.get(STORE_ENV)
    return Path(configured).expanduser() if configured else (CONFIG_DIR / "credentials.json.enc").expanduser()


def default_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """`$ML_CONNECTOR_KEY_FILE`, else `~/.config/ml-connector/key`."""
    env = os.environ if environ is None else environ
    configured = env.get(KEY_FILE_ENV)
    return Path(configured).expanduser() if configured else (CONFIG_DIR / "key").expanduser()


def fresh_key() -> str:
    """A fresh random key as urlsafe base64 text (the form `ML_CONNECTOR_KEY` and the key file hold)."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _decode_key(text: str | bytes, source: str) -> bytes:
    if isinstance(text, bytes) and len(text) == KEY_BYTES:
        return text  # raw key bytes
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    raw = raw.strip()
    try:
        key = base64.urlsafe_b64decode(raw.encode("ascii")) if raw else b""
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{source} does not hold a key: expected {KEY_BYTES} bytes as urlsafe base64 "
            f"({len(fresh_key())} characters, as `ml-connector credentials rotate-key` writes)"
        )
    return key


def key_source(environ: Mapping[str, str] | None = None) -> str:
    """Where the key comes from, for messages: the variable or the key file's path."""
    env = os.environ if environ is None else environ
    return KEY_ENV if env.get(KEY_ENV) else f"key file {default_key_file(env)}"


def needs_key(environ: Mapping[str, str] | None = None) -> bool:
    """True when there is no key yet: `ML_CONNECTOR_KEY` unset and no key file."""
    env = os.environ if environ is None else environ
    return not env.get(KEY_ENV) and not default_key_file(env).exists()


def load_key(key: str | bytes | None = None, *, environ: Mapping[str, str] | None = None) -> bytes:
    """The 32-byte key: `key` if given, else `$ML_CONNECTOR_KEY`, else the key file (owner-only)."""
    if key is not None:
        return _decode_key(key, "the key given")
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return _decode_key(env[KEY_ENV], f"environment variable {KEY_ENV}")
    path = default_key_file(env)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(
            f"no key for the credential store: set {KEY_ENV} or create the key file {path} "
            f"(`ml-connector credentials set` creates one on first use)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        _check_private(os.fstat(handle.fileno()), path)
        return _decode_key(handle.read(), f"key file {path}")


def _check_private(st: os.stat_result, path: Path) -> None:
    """A key file must be a regular file of ours, with no permission for group or others."""
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"key file {path} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ConfigError(f"key file {path} belongs to another user (uid {st.st_uid}); it must be yours alone")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"key file {path} is readable or writable by group or others (mode {mode:04o}); it must be "
            f"readable only by its owner: run `chmod 600 {path}`"
        )


def generate_key(key_file: Path | str | None = None, *, store: Path | str | None = None,
                 environ: Mapping[str, str] | None = None) -> Path:
    """Create the key file (mode 0600, directory 0700) with a fresh key; returns its path.

    Refuses when the key file exists, and when the store already holds records (a new key could not
    read them: restore the key file or set ML_CONNECTOR_KEY instead).
    """
    env = os.environ if environ is None else environ
    path = Path(key_file).expanduser() if key_file is not None else default_key_file(env)
    store_path = Path(store).expanduser() if store is not None else default_store_path(env)
    if path.exists():
        raise ConfigError(f"key file {path} already exists; `ml-connector credentials rotate-key` replaces it")
    if _read_store(store_path)["customers"]:
        raise ConfigError(
            f"the credential store {store_path} holds credentials but its key file {path} is missing: "
            f"restore the key file (or set {KEY_ENV}); a new key could not decrypt them"
        )
    _make_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(fresh_key() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


# -- the store file --------------------------------------------------------------------------------

def _empty() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "cipher": "AES-256-GCM", "key_check": None, "customers": {}}


def _read_store(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return _empty()
    except OSError as exc:
        raise ConfigError(f"cannot read the credential store {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("customers"), dict):
        raise ConfigError(f"{path} is not an ml-connector credential store (or it is damaged)")
    if data.get("version") != VERSION:
        raise ConfigError(f"the credential store {path} has format version {data.get('version')!r}; "
                          f"this ml-connector reads version {VERSION}")
    return data


def _write_store(path: Path, data: Mapping[str, Any]) -> None:
    _write_private(path, json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")


def _write_key_file(path: Path, key: bytes) -> None:
    _write_private(path, base64.urlsafe_b64encode(key) + b"\n")


def _write_private(path: Path, content: bytes) -> None:
    """Replace an owner-only file atomically: a 0600 temporary file in the same directory, fsync, os.replace."""
    _make_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _make_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive `flock` on `<store>.lock` around a read-modify-write (released if the process dies)."""
    _make_dir(path.parent)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- encryption ------------------------------------------------------------------------------------

def _aad(customer: str, kind: str) -> bytes:
    return b"ml-connector/credentials/v1\x00" + customer.encode() + b"\x00" + kind.encode()


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> dict[str, str]:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, aad)
    return {"nonce": base64.b64encode(nonce).decode(), "data": base64.b64encode(sealed).decode()}


def _open(key: bytes, record: Any, aad: bytes) -> bytes:
    """Decrypt one record; raises InvalidTag for a wrong key, a tampered or a moved record."""
    if not isinstance(record, dict):
        raise InvalidTag
    try:
        nonce = base64.b64decode(record["nonce"], validate=True)
        sealed = base64.b64decode(record["data"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise InvalidTag from None
    if len(nonce) != NONCE_BYTES:
        raise InvalidTag
    return AESGCM(key).decrypt(nonce, sealed, aad)


def _check_key(data: Mapping[str, Any], key: bytes, path: Path, source: str, pending: Path | None) -> None:
    """A wrong key fails here, clearly, before any record is touched. `pending`: where an interrupted
    rotation would have left the new key (`<key file>.new`), named in the message when it exists."""
    check = data.get("key_check")
    if check is None and not data["customers"]:
        return
    try:
        if _open(key, check, _KEY_CHECK_AAD) == _KEY_CHECK:
            return
    except InvalidTag:
        pass
    hint = f"; a key rotation was interrupted: the new key is in {pending}" if pending and pending.exists() else ""
    raise ConfigError(
        f"the credential store {path} cannot be decrypted with this key (wrong {KEY_ENV} or key file?) "
        f"— the key came from {source}{hint}"
    )


def _decrypt_profile(data: Mapping[str, Any], key: bytes, path: Path, customer: str, kind: str) -> dict[str, Any]:
    record = data["customers"].get(customer, {}).get(kind)
    try:
        plain = _open(key, record, _aad(customer, kind))
        values = json.loads(plain)
    except (InvalidTag, ValueError):
        raise ConfigError(
            f"the {kind} credentials of customer {customer!r} in {path} fail their integrity check: the record "
            f"was altered or copied from another customer; set them again with "
            f"`ml-connector credentials set {customer} {kind}`"
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(f"the {kind} credentials of customer {customer!r} in {path} are damaged; set them again")
    return values


@dataclass
class _Store:
    """One store file and its key, resolved from arguments and the environment."""

    path: Path
    environ: Mapping[str, str]
    key_arg: str | bytes | None

    @classmethod
    def of(cls, path: Path | str | None, key: str | bytes | None, environ: Mapping[str, str] | None) -> _Store:
        env = os.environ if environ is None else environ
        return cls(Path(path).expanduser() if path is not None else default_store_path(env), env, key)

    @property
    def key_source(self) -> str:
        return "the key given" if self.key_arg is not None else key_source(self.environ)

    def key(self) -> bytes:
        return load_key(self.key_arg, environ=self.environ)

    def read(self, *, must_exist: bool = True) -> dict[str, Any]:
        if must_exist and not self.path.exists():
            raise ConfigError(f"there is no credential store at {self.path} (set {STORE_ENV} to use another file; "
                              f"`ml-connector credentials set` creates it)")
        return _read_store(self.path)

    def unlocked(self, data: Mapping[str, Any]) -> bytes:
        key = self.key()
        from_file = self.key_arg is None and not self.environ.get(KEY_ENV)
        key_file = default_key_file(self.environ)
        pending = key_file.with_name(key_file.name + ".new") if from_file else None
        _check_key(data, key, self.path, self.key_source, pending)
        return key


# -- validation ------------------------------------------------------------------------------------

def _check_customer(customer: Any) -> str:
    if not isinstance(customer, str) or not customer:
        raise ConfigError("customer: a customer name is required")
    if (len(customer) > CUSTOMER_MAX or not (customer[0].isascii() and customer[0].isalnum())
            or not all(c.isascii() and (c.isalnum() or c in "._-") for c in customer)):
        raise ConfigError(
            f"customer {customer!r}: use letters, digits, '.', '_' or '-' (starting with a letter or digit, "
            f"at most {CUSTOMER_MAX} characters)"
        )
    return customer


def _check_kind(kind: Any) -> str:
    if kind not in FIELDS:
        raise ConfigError(f"profile kind {kind!r}: must be one of {', '.join(KINDS)}")
    return kind


def validate_profile(kind: str, values: Mapping[str, Any], *, allow_http: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The profile as it is stored (URLs normalised) and its warnings; raises ConfigError naming the field.

    SAP B1: `service_root` by `engine.sapb1.url.ServiceRoot.parse` (§1.2); plain http to a
    non-loopback host only with `allow_http` (and a warning). JAGGAER: `base_url` and `token_url`
    by `engine.project.url_problem` (§2.1: https, http only on loopback).
    """
    _check_kind(kind)
    fields = FIELDS[kind]
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ConfigError(f"{kind} profile: unknown field {unknown[0]!r} (fields: {', '.join(fields)})")
    profile: dict[str, Any] = {}
    for name in fields:
        value = values.get(name)
        if value is None or value == "":
            if name in OPTIONAL:
                continue
            raise ConfigError(f"{kind} profile: {name} is required")
        if not isinstance(value, str):
            raise ConfigError(f"{kind} profile: {name} must be text")
        if name not in SECRETS:
            value = value.strip()
            if not value:
                raise ConfigError(f"{kind} profile: {name} is required")
        if name not in SECRETS and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigError(f"{kind} profile: {name} must not contain control characters (a newline?)")
        profile[name] = value
    warnings: list[str] = []
    if kind == "sapb1":
        profile["service_root"], warnings = _service_root(profile["service_root"], allow_http)
    else:
        from engine.project import url_problem

        for name in ("base_url", "token_url"):
            if name in profile:
                if problem := url_problem(profile[name]):
                    if allow_http and profile[name].lower().startswith("http:"):
                        problem += " (--allow-http applies to the SAP B1 service root only: the engine refuses plain http to a JAGGAER host)"
                    raise ConfigError(f"jaggaer profile: {name}: {problem}")
                profile[name] = profile[name].rstrip("/")
    return profile, warnings


def _service_root(url: str, allow_http: bool) -> tuple[str, list[str]]:
    from engine.sapb1.url import ServiceRoot, is_loopback

    try:
        root = ServiceRoot.parse(url)
    except ConfigError as exc:
        raise ConfigError(f"sapb1 profile: service_root: {exc}") from None
    if root.scheme == "http" and not is_loopback(root.host) and not allow_http:
        raise ConfigError(
            f"sapb1 profile: service_root: {root.base!r} uses plain http to a non-loopback host, so the "
            "password and session would travel unencrypted; use https (or allow it explicitly: --allow-http)"
        )
    return root.base, list(root.warnings)


# -- the API ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stored:
    """What `set_profile` did: `replaced` an existing profile or not, and warnings about the values."""

    customer: str
    kind: str
    path: Path
    replaced: bool
    warnings: tuple[str, ...] = ()


def set_profile(customer: str, kind: str, values: Mapping[str, Any], *, path: Path | str | None = None,
                key: str | bytes | None = None, allow_http: bool = False,
                environ: Mapping[str, str] | None = None) -> Stored:
    """Validate and store (replace) the `kind` profile of `customer`; the store is created if needed."""
    customer, kind = _check_customer(customer), _check_kind(kind)
    profile, warnings = validate_profile(kind, values, allow_http=allow_http)
    store = _Store.of(path, key, environ)
    with _locked(store.path):
        data = store.read(must_exist=False)
        secret = store.unlocked(data)
        if data.get("key_check") is None:
            data["key_check"] = _seal(secret, _KEY_CHECK, _KEY_CHECK_AAD)
        entry = data["customers"].setdefault(customer, {})
        replaced = kind in entry
        entry[kind] = {
            **_seal(secret, json.dumps(profile, sort_keys=True).encode(), _aad(customer, kind)),
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_store(store.path, data)
    return Stored(customer, kind, store.path, replaced, tuple(warnings))


def get_profile(customer: str, kind: str, *, path: Path | str | None = None, key: str | bytes | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The plaintext `kind` profile of `customer` (for the engine; never print it)."""
    customer, kind = _check_customer(customer), _check_kind(kind)
    store = _Store.of(path, key, environ)
    data = store.read()
    entry = data["customers"].get(customer)
    if entry is None:
        raise ConfigError(f"the credential store {store.path} has no customer {customer!r} "
                          f"(add one with `ml-connector credentials set {customer} {kind} ...`)")
    if kind not in entry:
        has = ", ".join(sorted(entry)) or "none"
        raise ConfigError(f"customer {customer!r} has no {kind} profile in the credential store {store.path} "
                          f"(it has: {has}); add it with `ml-connector credentials set {customer} {kind} ...`")
    secret = store.unlocked(data)
    return _decrypt_profile(data, secret, store.path, customer, kind)


def list_customers(*, path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Each customer of the store with the kinds of profile it holds (names only: needs no key)."""
    store = _Store.of(path, None, environ)
    data = store.read(must_exist=False)
    return {name: sorted(kinds) for name, kinds in sorted(data["customers"].items())}


def describe(customer: str, *, path: Path | str | None = None, key: str | bytes | None = None,
             environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The profiles of `customer` without secrets: a secret shows as "set"; plus when each was updated."""
    customer = _check_customer(customer)
    store = _Store.of(path, key, environ)
    data = store.read()
    entry = data["customers"].get(customer)
    if entry is None:
        raise ConfigError(f"the credential store {store.path} has no customer {customer!r}")
    secret = store.unlocked(data)
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted(entry):
        if kind not in FIELDS:
            continue
        values = _decrypt_profile(data, secret, store.path, customer, kind)
        shown = {name: ("set" if name in SECRETS else values[name]) for name in FIELDS[kind] if name in values}
        shown["updated"] = entry[kind].get("updated")
        out[kind] = shown
    return out


def delete(customer: str, kind: str | None = None, *, path: Path | str | None = None,
           key: str | bytes | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Remove one profile of `customer`, or all of them; returns the kinds removed. Needs the key."""
    customer = _check_customer(customer)
    if kind is not None:
        _check_kind(kind)
    store = _Store.of(path, key, environ)
    with _locked(store.path):
        data = store.read()
        entry = data["customers"].get(customer)
        if entry is None:
            raise ConfigError(f"the credential store {store.path} has no customer {customer!r}")
        if kind is not None and kind not in entry:
            raise ConfigError(f"customer {customer!r} has no {kind} profile (it has: {', '.join(sorted(entry))})")
        store.unlocked(data)
        removed = [kind] if kind is not None else sorted(entry)
        for name in removed:
            del entry[name]
        if not entry:
            del data["customers"][customer]
        _write_store(store.path, data)
    return removed


@dataclass(frozen=True)
class Rotated:
    """What `rotate_key` did: records re-encrypted, and where the new key went."""

    path: Path
    records: int
    customers: int
    key_file: Path
    key_from_env: bool  # ML_CONNECTOR_KEY was set: it still holds the old key


def rotate_key(new_key: str | bytes | None = None, *, path: Path | str | None = None,
               key: str | bytes | None = None, key_file: Path | str | None = None,
               environ: Mapping[str, str] | None = None) -> Rotated:
    """Re-encrypt every record with `new_key` (default: a fresh one) and replace the key file.

    Order: the new key goes to `<key file>.new`, then the store is replaced, then the key file: an
    interruption leaves either the old store and old key, or the new store and `<key file>.new`
    (which the wrong-key message then names).
    """
    store = _Store.of(path, key, environ)
    fresh = load_key(new_key if new_key is not None else fresh_key())
    target = Path(key_file).expanduser() if key_file is not None else default_key_file(store.environ)
    with _locked(store.path):
        data = store.read()
        old = store.unlocked(data)
        if fresh == old:
            raise ConfigError("the new key is the key in use; rotation needs a different key")
        out = _empty()
        out["key_check"] = _seal(fresh, _KEY_CHECK, _KEY_CHECK_AAD)
        records = 0
        for customer, entry in data["customers"].items():
            for kind, record in entry.items():
                values = _decrypt_profile(data, old, store.path, customer, kind)
                out["customers"].setdefault(customer, {})[kind] = {
                    **_seal(fresh, json.dumps(values, sort_keys=True).encode(), _aad(customer, kind)),
                    "updated": record.get("updated"),
                }
                records += 1
        pending = target.with_name(target.name + ".new")
        _write_key_file(pending, fresh)
        _write_store(store.path, out)
        os.replace(pending, target)
        _fsync_dir(target.parent)
    return Rotated(store.path, records, len(out["customers"]), target, bool(store.environ.get(KEY_ENV)))


__all__ = [
    "FIELDS", "KEY_ENV", "KEY_FILE_ENV", "KINDS", "SECRETS", "STORE_ENV", "Rotated", "Stored",
    "default_key_file", "default_store_path", "delete", "describe", "fresh_key", "generate_key", "get_profile",
    "key_source", "list_customers", "load_key", "needs_key", "rotate_key", "set_profile",
    "validate_profile",
]
