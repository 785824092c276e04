"""`engine.credentials`: the encrypted per-customer store (no plaintext secret on disk, wrong key, rotation,
tenant isolation by associated data, URL rules, key-file permissions). Every path is under tmp_path."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from engine import credentials
from engine.errors import ConfigError

PASSWORD = "Sup3r-Secret-Pa55word"
CLIENT_SECRET = "cl1ent-s3cret-value-xyz"
SAPB1 = {"service_root": "https://b1.example.com:50000/b1s/v2", "company_db": "ACME", "username": "sync-user",
         "password": PASSWORD}
JAGGAER = {"base_url": "https://prep-reg02.api.jaggaer.com/", "client_id": "acme-erp-sync", "client_secret": CLIENT_SECRET}
WRONG_KEY = "the credential store .* cannot be decrypted with this key \\(wrong ML_CONNECTOR_KEY or key file\\?\\)"


def records(path: Path) -> dict:
    return json.loads(path.read_bytes())


def test_round_trip_and_normalised_urls(store: Path) -> None:
    first = credentials.set_profile("acme", "sapb1", SAPB1)
    assert (first.replaced, first.path, first.warnings) == (False, store, ())
    credentials.set_profile("acme", "jaggaer", JAGGAER)
    assert credentials.get_profile("acme", "sapb1") == SAPB1
    assert credentials.get_profile("acme", "jaggaer") == {**JAGGAER, "base_url": "https://prep-reg02.api.jaggaer.com"}
    assert credentials.list_customers() == {"acme": ["jaggaer", "sapb1"]}
    assert credentials.set_profile("acme", "sapb1", {**SAPB1, "company_db": "ACME2"}).replaced is True
    assert credentials.get_profile("acme", "sapb1")["company_db"] == "ACME2"


def test_the_file_holds_no_plaintext_secret(store: Path) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    credentials.set_profile("acme", "jaggaer", JAGGAER)
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    for path in store.parent.iterdir():  # the store, its lock file, no temporary file left behind
        data = path.read_bytes()
        for secret in (PASSWORD, CLIENT_SECRET):
            assert secret.encode() not in data, path
        assert b"b1.example.com" not in data or path.name == "key"  # every value is encrypted, not only secrets
    assert sorted(p.name for p in store.parent.iterdir()) == ["credentials.json.enc", "credentials.json.enc.lock", "key"]


def test_describe_never_shows_a_secret(store: Path) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    credentials.set_profile("acme", "jaggaer", JAGGAER)
    shown = credentials.describe("acme")
    assert shown["sapb1"]["password"] == "set" and shown["sapb1"]["username"] == "sync-user"
    assert shown["jaggaer"]["client_secret"] == "set" and shown["jaggaer"]["client_id"] == "acme-erp-sync"
    assert PASSWORD not in repr(shown) and CLIENT_SECRET not in repr(shown)


def test_wrong_key_fails_clearly(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    monkeypatch.setenv(credentials.KEY_ENV, credentials.fresh_key())
    for call in (lambda: credentials.get_profile("acme", "sapb1"), lambda: credentials.describe("acme"),
                 lambda: credentials.set_profile("acme", "sapb1", SAPB1), lambda: credentials.delete("acme"),
                 lambda: credentials.rotate_key()):
        with pytest.raises(ConfigError, match=WRONG_KEY) as exc:
            call()
        assert "ML_CONNECTOR_KEY" in str(exc.value) and PASSWORD not in str(exc.value)
    monkeypatch.setenv(credentials.KEY_ENV, "not-a-key")
    with pytest.raises(ConfigError, match="environment variable ML_CONNECTOR_KEY does not hold a key: expected 32 bytes"):
        credentials.get_profile("acme", "sapb1")


def test_rotation_re_encrypts_with_the_new_key(store: Path, tmp_path: Path) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    credentials.set_profile("globex", "jaggaer", JAGGAER)
    key_file = tmp_path / "cfg" / "key"
    old_key, old_bytes = key_file.read_text().strip(), store.read_bytes()
    rotated = credentials.rotate_key()
    assert (rotated.records, rotated.customers, rotated.key_file, rotated.key_from_env) == (2, 2, key_file, False)
    assert store.read_bytes() != old_bytes
    new_key = key_file.read_text().strip()
    assert new_key != old_key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not key_file.with_name("key.new").exists()
    with pytest.raises(ConfigError, match=WRONG_KEY):
        credentials.get_profile("acme", "sapb1", key=old_key)
    assert credentials.get_profile("acme", "sapb1") == SAPB1  # the replaced key file
    assert credentials.get_profile("globex", "jaggaer", key=new_key)["client_secret"] == CLIENT_SECRET
    assert records(store)["customers"]["acme"]["sapb1"]["data"] not in old_bytes.decode()  # a new ciphertext
    chosen = credentials.fresh_key()
    credentials.rotate_key(chosen)
    assert credentials.get_profile("acme", "sapb1", key=chosen) == SAPB1
    with pytest.raises(ConfigError, match="the new key is the key in use"):
        credentials.rotate_key(chosen)


def test_an_entry_copied_to_another_customer_does_not_decrypt(store: Path) -> None:
    """Tenant isolation: B's ciphertext placed under A's name fails (associated data = customer, kind)."""
    credentials.set_profile("acme", "sapb1", SAPB1)
    credentials.set_profile("globex", "sapb1", {**SAPB1, "company_db": "GLOBEX", "password": "globex-Pa55word!"})
    data = records(store)
    data["customers"]["acme"]["sapb1"] = data["customers"]["globex"]["sapb1"]
    store.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="the sapb1 credentials of customer 'acme' .* fail their integrity check: "
                                          "the record was altered or copied from another customer") as exc:
        credentials.get_profile("acme", "sapb1")
    assert "globex-Pa55word!" not in str(exc.value)
    with pytest.raises(ConfigError, match="integrity check"):
        credentials.describe("acme")
    assert credentials.get_profile("globex", "sapb1")["company_db"] == "GLOBEX"  # the key is right: only the move fails


def test_an_entry_moved_to_another_kind_or_altered_does_not_decrypt(store: Path) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    credentials.set_profile("acme", "jaggaer", JAGGAER)
    data = records(store)
    data["customers"]["acme"]["sapb1"] = dict(data["customers"]["acme"]["jaggaer"])
    store.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="integrity check"):
        credentials.get_profile("acme", "sapb1")
    data = records(store)
    record = data["customers"]["acme"]["jaggaer"]
    record["data"] = record["data"][:-4] + ("AAAA" if record["data"][-4:] != "AAAA" else "BBBB")
    store.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="integrity check"):
        credentials.get_profile("acme", "jaggaer")


@pytest.mark.parametrize("url", [
    "https://b1.example.com:50000/b1s/v1",
    "https://10.0.0.5:50000/b1s/v2",
    "http://127.0.0.1:50000/b1s/v2",
    "https://[::1]:50000/b1s/v2",
    "http://localhost:50000/b1s/v1/",
])
def test_service_roots_accepted(store: Path, url: str) -> None:
    credentials.set_profile("acme", "sapb1", {**SAPB1, "service_root": url})
    assert credentials.get_profile("acme", "sapb1")["service_root"] == url.rstrip("/")


@pytest.mark.parametrize(("url", "why"), [
    ("https://b1.example.com:50000/", "the path must be exactly /b1s/v1 or /b1s/v2"),
    ("https://b1.example.com:50000/b1s/v3", "the path must be exactly /b1s/v1 or /b1s/v2"),
    ("ftp://b1.example.com:50000/b1s/v2", "the scheme must be https (or http), not 'ftp'"),
    ("https://b1.example.com:50000/b1s/v2?company=X", "it must not contain a query string"),
    ("https://b1.example.com:50000/b1s/v2#x", "it must not contain a fragment"),
    ("https://b1.example.com:99999/b1s/v2", "the port is not a number"),
    ("b1.example.com:50000/b1s/v2", "it must be an absolute URL"),
    ("https://sync:hunter2@b1.example.com:50000/b1s/v2", "it must not contain user-info"),
    ("http://b1.example.com:50000/b1s/v2", "uses plain http to a non-loopback host"),
    ("http://10.0.0.5:50000/b1s/v2", "--allow-http"),
])
def test_service_roots_refused_saying_why(store: Path, url: str, why: str) -> None:
    with pytest.raises(ConfigError) as exc:
        credentials.set_profile("acme", "sapb1", {**SAPB1, "service_root": url})
    message = str(exc.value)
    assert message.startswith("sapb1 profile: service_root: ") and why in message
    assert "hunter2" not in message
    assert not store.exists()  # nothing written


def test_plain_http_with_allow_http_is_stored_with_a_warning(store: Path) -> None:
    stored = credentials.set_profile("acme", "sapb1", {**SAPB1, "service_root": "http://10.0.0.5:50000/b1s/v2"},
                                     allow_http=True)
    assert any("plain http to a non-loopback host" in w for w in stored.warnings)
    assert credentials.get_profile("acme", "sapb1")["service_root"] == "http://10.0.0.5:50000/b1s/v2"


@pytest.mark.parametrize(("values", "why"), [
    ({"base_url": "http://tenant.example.com"}, "base_url: 'http://tenant.example.com': plain http is allowed only for a loopback host"),
    ({"base_url": "ftp://tenant.example.com"}, "base_url: 'ftp://tenant.example.com' must be an absolute https:// URL"),
    ({"token_url": "https://t.example.com/token?x=1"}, "token_url: 'https://t.example.com/token?x=1' must not carry a query"),
    ({"base_url": ""}, "jaggaer profile: base_url is required"),
    ({"client_secret": None}, "jaggaer profile: client_secret is required"),
    ({"clientsecret": "x"}, "jaggaer profile: unknown field 'clientsecret'"),
])
def test_jaggaer_urls_and_fields(store: Path, values: dict, why: str) -> None:
    with pytest.raises(ConfigError) as exc:
        credentials.set_profile("acme", "jaggaer", {**JAGGAER, **values})
    assert why in str(exc.value)


def test_jaggaer_loopback_and_token_url(store: Path) -> None:
    credentials.set_profile("acme", "jaggaer", {**JAGGAER, "base_url": "http://127.0.0.1:8443",
                                                "token_url": "https://sso.example.com/token/"})
    assert credentials.get_profile("acme", "jaggaer")["token_url"] == "https://sso.example.com/token"


@pytest.mark.parametrize(("customer", "kind", "why"), [
    ("../etc", "sapb1", "customer '../etc': use letters, digits"),
    ("", "sapb1", "a customer name is required"),
    ("acme", "sap", "profile kind 'sap': must be one of sapb1, jaggaer"),
])
def test_names_are_checked(store: Path, customer: str, kind: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why.replace("(", r"\(").replace(".", r"\.")):
        credentials.set_profile(customer, kind, SAPB1)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_file_others_can_read_is_refused(store: Path, tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "cfg" / "key"
    os.chmod(key_file, mode)
    with pytest.raises(ConfigError) as exc:
        credentials.set_profile("acme", "sapb1", SAPB1)
    assert str(exc.value) == (f"key file {key_file} is readable or writable by group or others (mode {mode:04o}); "
                              f"it must be readable only by its owner: run `chmod 600 {key_file}`")
    os.chmod(key_file, 0o400)
    credentials.set_profile("acme", "sapb1", SAPB1)


def test_key_from_the_environment_and_missing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(credentials.STORE_ENV, str(tmp_path / "s" / "store.enc"))
    monkeypatch.setenv(credentials.KEY_FILE_ENV, str(tmp_path / "s" / "key"))
    monkeypatch.delenv(credentials.KEY_ENV, raising=False)
    assert credentials.needs_key()
    with pytest.raises(ConfigError, match="no key for the credential store: set ML_CONNECTOR_KEY or create the key file"):
        credentials.set_profile("acme", "sapb1", SAPB1)
    key = credentials.fresh_key()
    monkeypatch.setenv(credentials.KEY_ENV, key)
    assert not credentials.needs_key()
    credentials.set_profile("acme", "sapb1", SAPB1)
    assert not (tmp_path / "s" / "key").exists()
    monkeypatch.delenv(credentials.KEY_ENV)
    with pytest.raises(ConfigError, match="holds credentials but its key file .* is missing"):
        credentials.generate_key()  # a new key could not read what is stored
    assert credentials.get_profile("acme", "sapb1", key=key) == SAPB1


def test_generate_key_creates_an_owner_only_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(credentials.STORE_ENV, str(tmp_path / "store.enc"))
    key_file = tmp_path / "new" / "dir" / "key"
    assert credentials.generate_key(key_file) == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(credentials.load_key(key_file.read_text())) == 32
    with pytest.raises(ConfigError, match="already exists"):
        credentials.generate_key(key_file)


def test_delete_and_missing_entries(store: Path) -> None:
    credentials.set_profile("acme", "sapb1", SAPB1)
    credentials.set_profile("acme", "jaggaer", JAGGAER)
    credentials.set_profile("globex", "sapb1", SAPB1)
    assert credentials.delete("acme", "jaggaer") == ["jaggaer"]
    with pytest.raises(ConfigError, match="customer 'acme' has no jaggaer profile .*it has: sapb1"):
        credentials.get_profile("acme", "jaggaer")
    assert credentials.delete("acme") == ["sapb1"]
    with pytest.raises(ConfigError, match="has no customer 'acme'"):
        credentials.get_profile("acme", "sapb1")
    assert credentials.list_customers() == {"globex": ["sapb1"]}


def test_a_damaged_or_absent_store(store: Path) -> None:
    with pytest.raises(ConfigError, match="there is no credential store at"):
        credentials.get_profile("acme", "sapb1")
    assert credentials.list_customers() == {}
    store.write_text("not json")
    with pytest.raises(ConfigError, match="is not an ml-connector credential store"):
        credentials.get_profile("acme", "sapb1")


def test_explicit_path_argument(store: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "c.enc"
    credentials.set_profile("acme", "sapb1", SAPB1, path=other)
    assert other.exists() and not store.exists()
    assert credentials.get_profile("acme", "sapb1", path=other) == SAPB1
    assert credentials.list_customers(path=other) == {"acme": ["sapb1"]}


def test_an_interrupted_rotation_is_named(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash after the store was replaced, before the key file was: the message points at `key.new`."""
    credentials.set_profile("acme", "sapb1", SAPB1)
    key_file = tmp_path / "cfg" / "key"
    old = key_file.read_bytes()
    real_replace = os.replace

    def crash_on_key(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == key_file:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_key)
    with pytest.raises(KeyboardInterrupt):
        credentials.rotate_key()
    monkeypatch.setattr(os, "replace", real_replace)
    assert key_file.read_bytes() == old
    with pytest.raises(ConfigError, match=f"a key rotation was interrupted: the new key is in {key_file}.new"):
        credentials.get_profile("acme", "sapb1")
    os.replace(key_file.with_name("key.new"), key_file)
    assert credentials.get_profile("acme", "sapb1") == SAPB1
