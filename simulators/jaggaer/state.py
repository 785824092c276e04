"""`--state FILE`: keep the simulator's tenants and clock across restarts (a local pickle file)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulators.jaggaer.app import JaggaerApp

FORMAT = 1


def save_state(app: JaggaerApp, path: str | os.PathLike[str]) -> None:
    """Write all tenants and the clock to `path` atomically."""
    for tenant in app.tenants.values():
        for collection in (tenant.store.suppliers, tenant.store.orders, tenant.store.invoices):
            collection.touch()  # drop query caches before pickling
    data = {"format": FORMAT, "clock": app.clock, "default": app.default_tenant, "tenants": app.tenants}
    target = Path(path)
    tmp = target.with_suffix(target.suffix + ".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, target)


def load_state(app: JaggaerApp, path: str | os.PathLike[str]) -> bool:
    """Replace `app`'s tenants and clock with those saved in `path`; False when there is no file."""
    target = Path(path)
    if not target.exists():
        return False
    with open(target, "rb") as handle:
        data = pickle.load(handle)  # noqa: S301 - our own local state file
    if data.get("format") != FORMAT:
        raise ValueError(f"{target}: unknown state format {data.get('format')!r}")
    app.clock = data["clock"]
    app.tenants = data["tenants"]
    for tenant in app.tenants.values():
        tenant.store.clock = app.clock
    return True
