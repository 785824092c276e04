"""`ml-connector credentials ...`: the secret never travels in argv (no option for it; stdin works in a
real subprocess), output never shows a secret, errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine import credentials
from engine.cli import build_parser, main

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "Sup3r-Secret-Pa55word"
CLIENT_SECRET = "cl1ent-s3cret-value-xyz"
SET_SAPB1 = ["credentials", "set", "acme", "sapb1", "--service-root", "https://b1.example.com:50000/b1s/v2",
             "--company-db", "ACME", "--username", "sync-user"]
SET_JAGGAER = ["credentials", "set", "acme", "jaggaer", "--base-url", "https://prep-reg02.api.jaggaer.com",
               "--client-id", "acme-erp-sync"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "HOME": str(tmp_path / "home"),
        credentials.STORE_ENV: str(tmp_path / "cfg" / "credentials.json.enc"),
        credentials.KEY_FILE_ENV: str(tmp_path / "cfg" / "key"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(credentials.KEY_ENV, raising=False)
    return values


def run(argv: list[str], stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    assert monkeypatch is not None
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def credential_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parsers the verb registers (`credentials` and each action), as `ml-connector` gets them."""
    from engine.cli import credentials as verb

    verbs = argparse.ArgumentParser(prog="ml-connector").add_subparsers()
    verb.register(verbs)
    top = verbs.choices["credentials"]
    actions = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return {"credentials": top, **actions.choices}


def test_no_argument_can_carry_a_secret() -> None:
    parsers = credential_parsers()
    assert set(parsers) == {"credentials", "set", "list", "show", "delete", "rotate-key"}
    for name, parser in parsers.items():
        for action in parser._actions:
            words = " ".join([action.dest, *action.option_strings]).lower()
            for forbidden in ("password", "secret", "passwd", "key"):
                assert forbidden not in words, (name, action.option_strings)
    positionals = [a.dest for a in parsers["set"]._actions if not a.option_strings]
    assert positionals == ["customer", "kind"]
    top = build_parser()  # the whole command line: only --help and --version besides the verbs
    assert [o for a in top._actions for o in a.option_strings] == ["-h", "--help", "--version"]
    with pytest.raises(SystemExit) as exc:  # and argparse refuses a secret option
        main([*SET_SAPB1, "--password", PASSWORD])
    assert exc.value.code == 2


def test_set_in_a_subprocess_reads_the_secret_from_stdin(env: dict[str, str], tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())", *SET_SAPB1]
    assert not any(PASSWORD in arg for arg in argv)
    done = subprocess.run(argv, input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    key_file = tmp_path / "cfg" / "key"
    assert f"created a new key in {key_file} (mode 0600)" in done.stderr  # first use
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert done.stdout.strip() == f"stored the sapb1 profile of acme in {env[credentials.STORE_ENV]}"
    assert PASSWORD not in done.stdout + done.stderr
    assert credentials.get_profile("acme", "sapb1")["password"] == PASSWORD  # newline stripped
    assert PASSWORD.encode() not in Path(env[credentials.STORE_ENV]).read_bytes()


def test_set_list_show_delete(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(SET_SAPB1, PASSWORD, monkeypatch) == 0
    assert run(SET_JAGGAER, CLIENT_SECRET + "\r\n", monkeypatch) == 0
    assert credentials.get_profile("acme", "jaggaer")["client_secret"] == CLIENT_SECRET
    capsys.readouterr()
    assert run(["credentials", "list"], "", monkeypatch) == 0
    assert capsys.readouterr().out == "acme  jaggaer, sapb1\n"
    assert run(["credentials", "show", "acme"], "", monkeypatch) == 0
    out = capsys.readouterr().out
    assert "password      set" in out and "client_secret set" in out and "sync-user" in out
    assert PASSWORD not in out and CLIENT_SECRET not in out
    assert run(["credentials", "show", "acme", "--json"], "", monkeypatch) == 0
    assert PASSWORD not in capsys.readouterr().out
    assert run(["credentials", "delete", "acme", "jaggaer"], "", monkeypatch) == 0
    assert capsys.readouterr().out == "deleted the jaggaer profile of acme\n"
    assert credentials.list_customers() == {"acme": ["sapb1"]}


def test_wrong_key_is_one_clear_line(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(SET_SAPB1, PASSWORD, monkeypatch) == 0
    capsys.readouterr()
    monkeypatch.setenv(credentials.KEY_ENV, credentials.fresh_key())
    assert run(["credentials", "show", "acme"], "", monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: the credential store {env[credentials.STORE_ENV]} cannot be decrypted with this key "
                          "(wrong ML_CONNECTOR_KEY or key file?)")
    assert "Traceback" not in err and err.count("\n") == 1


def test_rotate_key(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(SET_SAPB1, PASSWORD, monkeypatch) == 0
    old = Path(env[credentials.KEY_FILE_ENV]).read_text()
    assert run(["credentials", "rotate-key"], "", monkeypatch) == 0
    assert "re-encrypted 1 profile(s) of 1 customer(s)" in capsys.readouterr().out
    assert Path(env[credentials.KEY_FILE_ENV]).read_text() != old
    assert credentials.get_profile("acme", "sapb1")["password"] == PASSWORD


@pytest.mark.parametrize(("argv", "message"), [
    (SET_SAPB1[:-2], "usage: a sapb1 profile needs --username"),
    ([*SET_SAPB1, "--client-id", "x"], "usage: --client-id is for jaggaer profiles, not sapb1"),
    (SET_JAGGAER[:-2], "usage: a jaggaer profile needs --client-id"),
])
def test_set_usage(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                   argv: list[str], message: str) -> None:
    assert run(argv, PASSWORD, monkeypatch) == 2
    assert message in capsys.readouterr().err
    assert not Path(env[credentials.STORE_ENV]).exists()


def test_an_empty_secret_is_refused(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(SET_SAPB1, "\n", monkeypatch) == 2
    assert "no password given" in capsys.readouterr().err


def test_a_bad_url_is_refused_before_the_secret_is_read(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.StringIO(PASSWORD)
    monkeypatch.setattr(sys, "stdin", stdin)
    argv = [*SET_SAPB1]
    argv[argv.index("--service-root") + 1] = "http://b1.example.com:50000/b1s/v2"
    assert main(argv) == 1
    assert "--allow-http" in capsys.readouterr().err
    assert stdin.tell() == 0  # nobody was asked for a secret
    argv.append("--allow-http")
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("uses plain http to a non-loopback host") == 1 and err.count("warning: ") == 1


def test_the_secret_is_asked_without_echo_on_a_terminal(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked = []
    monkeypatch.setattr(sys, "stdin", Tty(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or PASSWORD)
    assert main(SET_SAPB1) == 0
    assert asked == ["password: ", "password (again): "]
    assert credentials.get_profile("acme", "sapb1")["password"] == PASSWORD
