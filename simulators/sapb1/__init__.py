"""A faithful SAP Business One Service Layer simulator (`/b1s/v1` and `/b1s/v2`) on loopback.

    from simulators.sapb1 import start_simulator

    with start_simulator(seed="demo", session_timeout=1800, latency_ms=0) as sim:
        sim.service_root("v2")          # "http://127.0.0.1:PORT/b1s/v2"
        sim.set_knobs(error_rate=0.1)   # any SapKnobs field, effective at once
        sim.expire_sessions()
        sim.entities("PurchaseOrders")  # the stored records
        sim.counters                    # requests and committed writes

`start_simulator(..., subprocess=True)` runs the same simulator as a child process (the CLI), for
benchmarks whose load generator must not share the GIL; the handle works the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess as subprocess_module
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from simulators.http import HttpServer, ServerThread
from simulators.sapb1.config import REALISTIC_PROFILE, SapKnobs, SimConfig

__all__ = ["REALISTIC_PROFILE", "SapKnobs", "SimConfig", "Simulator", "build_server", "start_simulator"]


def build_server(config: SimConfig, knob_overrides: dict[str, Any] | None = None):
    """(HttpServer, ServiceLayerApp) for `config`; the caller starts the server."""
    from simulators.sapb1.app import ServiceLayerApp

    knobs = SapKnobs()
    unknown = knobs.update(dict(knob_overrides or {}))
    if unknown:
        raise TypeError(f"unknown simulator knobs: {', '.join(unknown)}")
    app = ServiceLayerApp(config, knobs)
    ssl_context = None
    if config.tls:
        from simulators.sapb1.tls import self_signed_context

        ssl_context = self_signed_context(config.host)
    extra = [("Server", "Apache/2.4.58 (Unix)"), ("Vary", "Accept-Encoding")]
    if ssl_context is not None:
        extra.append(("Strict-Transport-Security", "max-age=63072000; includeSubdomains; preload"))
    server = HttpServer(
        app.handle, config.host, config.port, ssl_context=ssl_context, max_body_bytes=config.max_body_bytes,
        on_too_large=app.too_large, extra_headers=extra,
    )
    return server, app


class Simulator:
    """A running simulator, driven through its admin endpoints (same for thread and subprocess)."""

    def __init__(self, base_url: str, config: SimConfig, app: Any = None) -> None:
        self.base_url = base_url
        self.config = config
        self.app = app  # the in-process ServiceLayerApp (None for a subprocess)
        self._admin = httpx.Client(base_url=base_url, timeout=30, verify=False)

    @property
    def company(self) -> str:
        return self.config.company

    @property
    def user(self) -> str:
        return self.config.user

    @property
    def password(self) -> str:
        return self.config.password

    def service_root(self, version: str = "v2") -> str:
        if version not in ("v1", "v2"):
            raise ValueError("version must be 'v1' or 'v2'")
        return f"{self.base_url}/b1s/{version}"

    def login_body(self) -> dict[str, str]:
        return {"CompanyDB": self.company, "UserName": self.user, "Password": self.password}

    def set_knobs(self, **changes: Any) -> dict[str, Any]:
        response = self._admin.patch("/_sim/knobs", json=changes)
        if response.status_code != 200:
            raise ValueError(response.json().get("error", response.text))
        return response.json()

    def knobs(self) -> dict[str, Any]:
        return self._admin.get("/_sim/knobs").json()

    def expire_sessions(self) -> int:
        return self._admin.post("/_sim/sessions/expire").json()["expired"]

    def entities(self, entity_set: str) -> list[dict[str, Any]]:
        response = self._admin.get(f"/_sim/dump/{entity_set}")
        if response.status_code != 200:
            raise KeyError(entity_set)
        return response.json()

    @property
    def counters(self) -> dict[str, Any]:
        return self._admin.get("/_sim/counters").json()

    def reset(self, seed: str | None = None) -> None:
        self._admin.post("/_sim/reset", params={"seed": seed or self.config.seed})

    def close(self) -> None:
        self._admin.close()


@contextlib.contextmanager
def start_simulator(
    seed: str = "demo",
    session_timeout: float = 1800,
    *,
    company: str = "SBODEMOUS",
    user: str = "manager",
    password: str = "manager",
    state: str | os.PathLike | None = None,
    max_body_bytes: int = 52_428_800,
    tls: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    subprocess: bool = False,
    **knob_overrides: Any,
) -> Iterator[Simulator]:
    """Start a simulator on an ephemeral loopback port (background thread or child process)."""
    config = SimConfig(host=host, port=port, company=company, user=user, password=password,
                       session_timeout=session_timeout, seed=seed, state=str(state) if state else None,
                       tls=tls, max_body_bytes=max_body_bytes)
    if subprocess:
        with _child(config, knob_overrides) as sim:
            yield sim
        return
    server, app = build_server(config, knob_overrides)
    with ServerThread(server) as running:
        sim = Simulator(running.base_url, config, app)
        try:
            yield sim
        finally:
            sim.close()


@contextlib.contextmanager
def _child(config: SimConfig, knobs: dict[str, Any]) -> Iterator[Simulator]:
    args = [sys.executable, "-m", "simulators.sapb1.cli", "--host", config.host, "--port", str(config.port),
            "--company", config.company, "--user", config.user, "--password", config.password,
            "--session-timeout", str(config.session_timeout), "--seed", config.seed,
            "--max-body-bytes", str(config.max_body_bytes)]
    if config.state:
        args += ["--state", config.state]
    if config.tls:
        args.append("--tls")
    fields = {f.name for f in dataclasses.fields(SapKnobs)}
    for name, value in knobs.items():
        if name not in fields:
            raise TypeError(f"unknown simulator knob: {name}")
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        else:
            args += [flag, str(value)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess_module.Popen(args, stdout=subprocess_module.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline() if child.stdout else ""
        match = re.search(r"listening on (\S+)/b1s/v2", line)
        if not match:
            raise RuntimeError(f"simulator did not start: {line!r}")
        sim = Simulator(match.group(1), config)
        try:
            yield sim
        finally:
            sim.close()
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess_module.TimeoutExpired:
            child.kill()
