"""JAGGAER J1P simulator: real HTTP on loopback, Keycloak-shaped tokens, J1P lists and records.

Tests and scripts start it in a background thread on an ephemeral port:

    with start_simulator(seed=200, random_seed=7, history_days=30) as sim:
        token = httpx.post(sim.token_url, data={"grant_type": "client_credentials",
                           "client_id": sim.client_id, "client_secret": sim.client_secret}).json()
        httpx.get(f"{sim.base_url}/j1p/api/public/je/v1/purchaseorders",
                  headers={"Authorization": f"Bearer {token['access_token']}"})
        sim.set_knobs(rate_limit=5, retry_after=0)
        sim.change_purchase_order(po_id, lines=[{"lineNumber": 1, "quantity": 12}])

The contract is the team's J1P reference (jaggaer-j1p.md); knobs are `JaggaerKnobs` fields, and
record shapes are `schemas/jaggaer/*.schema.json`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from simulators.http import HttpServer, ServerThread
from simulators.jaggaer import ops, render
from simulators.jaggaer.app import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, JaggaerApp, Tenant
from simulators.jaggaer.auth import TOKEN_PATH
from simulators.jaggaer.knobs import JaggaerKnobs
from simulators.jaggaer.store import SimClock

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "JaggaerApp",
    "JaggaerKnobs",
    "JaggaerSimulator",
    "SimClock",
    "TOKEN_PATH",
    "TenantInfo",
    "build_app",
    "start_simulator",
]


@dataclass(frozen=True)
class TenantInfo:
    name: str
    base_url: str
    token_url: str
    client_id: str
    client_secret: str


def build_app(seed: int = 50, random_seed: int | None = None, history_days: float = 30, tenant: str = "demo",
              client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET, **knobs: Any) -> JaggaerApp:
    """An app with its default tenant seeded with `seed` purchase orders. Knobs are JaggaerKnobs fields."""
    settings = JaggaerKnobs(random_seed=random_seed)
    unknown = settings.update({k: v for k, v in knobs.items() if v is not None})
    if unknown:
        raise TypeError(f"unknown simulator knobs: {', '.join(unknown)}")
    app = JaggaerApp(settings, SimClock(), default_tenant=tenant)
    app.add_tenant(tenant, client_id, client_secret, seed, random_seed, history_days)
    return app


class JaggaerSimulator:
    """A running simulator (background thread). Data changes run on the server's loop thread."""

    def __init__(self, app: JaggaerApp, running: ServerThread) -> None:
        self.app = app
        self._running = running

    # -- addresses and credentials ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._running.base_url

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def tenant(self) -> str:
        return self.app.default_tenant

    @property
    def client_id(self) -> str:
        return self.app.tenant().client_id

    @property
    def client_secret(self) -> str:
        return self.app.tenant().client_secret

    def tenant_base_url(self, name: str) -> str:
        return f"{self.base_url}/tenants/{name}"

    def add_tenant(self, name: str, client_id: str, client_secret: str, seed: int = 0,
                   random_seed: int | None = None, history_days: float = 30) -> TenantInfo:
        self._call(lambda: self.app.add_tenant(name, client_id, client_secret, seed, random_seed, history_days))
        base = self.tenant_base_url(name)
        return TenantInfo(name, base, base + TOKEN_PATH, client_id, client_secret)

    # -- knobs, clock, counters ----------------------------------------------------------------

    def set_knobs(self, **changes: Any) -> dict[str, Any]:
        def apply() -> dict[str, Any]:
            unknown = self.app.knobs.update(changes)
            if unknown:
                raise TypeError(f"unknown simulator knobs: {', '.join(unknown)}")
            return self.app.knobs.as_dict()

        return self._call(apply)

    @property
    def knobs(self) -> JaggaerKnobs:
        return self.app.knobs

    @property
    def clock(self) -> SimClock:
        return self.app.clock

    @property
    def counters(self) -> dict[str, int]:
        from simulators.jaggaer.admin import counters

        return self._call(lambda: counters(self.app))

    # -- data ------------------------------------------------------------------------------------

    def _call(self, fn: Any) -> Any:
        return self._running.call(fn)

    def _tenant(self, name: str | None) -> Tenant:
        return self.app.tenant(name)

    def create_purchase_order(self, supplier_id: int | None = None, lines: list[dict] | None = None,
                              n_lines: int | None = None, workflow_status: str = "Completed",
                              note: str | None = None, tenant: str | None = None) -> dict[str, Any]:
        t = self._tenant(tenant)
        return self._call(lambda: render.purchase_order(ops.create_order(
            t.store, t.generator, supplier_id, lines, n_lines, workflow_status, note)))

    def change_purchase_order(self, po_id: int, tenant: str | None = None, **changes: Any) -> dict[str, Any]:
        t = self._tenant(tenant)
        return self._call(lambda: render.purchase_order(ops.change_order(t.store, t.generator, po_id, changes)))

    def close_purchase_order(self, po_id: int, tenant: str | None = None) -> dict[str, Any]:
        t = self._tenant(tenant)
        return self._call(lambda: render.purchase_order(ops.close_order(t.store, po_id)))

    def cancel_purchase_order(self, po_id: int, tenant: str | None = None) -> dict[str, Any]:
        t = self._tenant(tenant)
        return self._call(lambda: render.purchase_order(ops.cancel_order(t.store, po_id)))

    def create_invoice(self, po_id: int | None = None, lines: list[dict] | None = None, supplier_id: int | None = None,
                       invoice_type: str = "Invoice", workflow_status: str = "Completed",
                       supplier_invoice_number: str | None = None, tenant: str | None = None) -> dict[str, Any]:
        t = self._tenant(tenant)
        return self._call(lambda: render.invoice(ops.create_invoice(
            t.store, t.generator, po_id, lines, supplier_id, invoice_type, workflow_status, supplier_invoice_number),
            t.store.salt))

    def change_invoice(self, invoice_id: int, tenant: str | None = None, **changes: Any) -> dict[str, Any]:
        t = self._tenant(tenant)
        return self._call(lambda: render.invoice(ops.change_invoice(t.store, t.generator, invoice_id, changes), t.store.salt))

    def change_supplier(self, bravo_id: int | str, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
        """Partial update of a company profile (same validation as the API's UPDATE)."""
        t = self._tenant(tenant)

        def apply() -> dict[str, Any]:
            supplier = ops.get_supplier(t.store, bravo_id)
            new, unknown = ops.company_changes(ops.normalise(fields))
            if unknown:
                raise ops.InvalidField(unknown[0])
            ops.update_company(t.store, supplier, new)
            return render.company(supplier)

        return self._call(apply)

    def create_supplier(self, tenant: str | None = None, **fields: Any) -> dict[str, Any]:
        t = self._tenant(tenant)

        def apply() -> dict[str, Any]:
            new, unknown = ops.company_changes(ops.normalise(fields))
            if unknown:
                raise ops.InvalidField(unknown[0])
            return render.company(ops.create_company(t.store, new))

        return self._call(apply)

    def purchase_orders(self, tenant: str | None = None) -> list[dict[str, Any]]:
        t = self._tenant(tenant)
        return self._call(lambda: [render.purchase_order(po) for po in t.store.orders.ordered])

    def invoices(self, tenant: str | None = None) -> list[dict[str, Any]]:
        t = self._tenant(tenant)
        return self._call(lambda: [render.invoice(inv, t.store.salt) for inv in t.store.invoices.ordered])

    def suppliers(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Company profiles of type SELLER, as the list renders them (`{"returnCompanyInfo": {...}}`)."""
        t = self._tenant(tenant)
        return self._call(lambda: [render.company(s) for s in t.store.suppliers.ordered if s.info.get("type") == "SELLER"])

    def company_profiles(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """All company profiles, the tenant's own BUYER company included."""
        t = self._tenant(tenant)
        return self._call(lambda: [render.company(s) for s in t.store.suppliers.ordered])

    def save_state(self, path: str) -> None:
        from simulators.jaggaer.state import save_state

        self._call(lambda: save_state(self.app, path))


@contextmanager
def start_simulator(seed: int = 50, random_seed: int | None = None, history_days: float = 30, page_size: int = 100,
                    token_lifetime: int = 300, tenant: str = "demo", client_id: str = DEFAULT_CLIENT_ID,
                    client_secret: str = DEFAULT_CLIENT_SECRET, host: str = "127.0.0.1", port: int = 0,
                    **knobs: Any) -> Iterator[JaggaerSimulator]:
    """Run a simulator in a background thread (ephemeral port by default) for the `with` block."""
    app = build_app(seed, random_seed, history_days, tenant, client_id, client_secret,
                    page_size=page_size, token_lifetime=token_lifetime, **knobs)
    server = HttpServer(app, host=host, port=port, on_too_large=app.too_large)
    with ServerThread(server) as running:
        yield JaggaerSimulator(app, running)

