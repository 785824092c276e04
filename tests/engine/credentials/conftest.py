"""A credential store of its own per test: store, key file and HOME under tmp_path, no ML_CONNECTOR_KEY."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import credentials


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The store's path, with a fresh key file; the user's real home is never touched."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(credentials.STORE_ENV, str(tmp_path / "cfg" / "credentials.json.enc"))
    monkeypatch.setenv(credentials.KEY_FILE_ENV, str(tmp_path / "cfg" / "key"))
    monkeypatch.delenv(credentials.KEY_ENV, raising=False)
    credentials.generate_key()
    return tmp_path / "cfg" / "credentials.json.enc"
