"""A temporary copy of the repo's project wired to both simulators, for acceptance tests.

    with start_stack(tmp_path, seed=20) as stack:
        report = stack.run()                      # extract -> plan -> load, over real sockets
        stack.b1_docs("PurchaseOrders")           # {U_JaggaerRef: B1 document}
        stack.audit("failures")                   # rows of `ml-connector audit failures --json`

The project (pipelines, mappings, rule tables, schemas, ml-connector.yaml) is copied from the repo,
so a test may edit its mappings or rule tables without touching the repo's own.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.project import load_project
from engine.runner import RunReport, replay_failed, run_pipelines

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PARTS = ("pipelines", "mappings", "schemas")


def copy_project(dest: Path) -> Path:
    """The repo's project files (not its state) under `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in PROJECT_PARTS:
        shutil.copytree(ROOT / folder, dest / folder)
    shutil.copy(ROOT / "ml-connector.yaml", dest / "ml-connector.yaml")
    return dest


@dataclass
class Stack:
    """Both simulators and a project pointing at them."""

    root: Path
    b1: Any  # simulators.sapb1.Simulator
    jag: Any  # simulators.jaggaer.JaggaerSimulator

    @property
    def environ(self) -> dict[str, str]:
        return {
            "JAGGAER_BASE_URL": self.jag.base_url, "JAGGAER_CLIENT_ID": self.jag.client_id,
            "JAGGAER_CLIENT_SECRET": self.jag.client_secret, "SAPB1_SERVICE_ROOT": self.b1.service_root("v2"),
            "SAPB1_COMPANY_DB": self.b1.company, "SAPB1_USERNAME": self.b1.user, "SAPB1_PASSWORD": self.b1.password,
        }

    @property
    def state(self) -> Path:
        return self.root / "var" / "state.duckdb"

    def run(self, names: list[str] | None = None, **kwargs: Any) -> RunReport:
        return run_pipelines(load_project(self.root, names, environ=self.environ), names, **kwargs)

    def replay(self, **kwargs: Any) -> RunReport | None:
        return replay_failed(load_project(self.root, environ=self.environ), **kwargs)

    def cli(self, *argv: str) -> tuple[int, str]:
        """`ml-connector ARGV... --project ROOT` in-process: (exit code, stdout)."""
        from engine.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([*argv, "--project", str(self.root)])
        return code, out.getvalue()

    def audit(self, query: str, *args: str) -> list[dict[str, Any]]:
        """Rows of `ml-connector audit QUERY ARGS --json`."""
        code, out = self.cli("audit", query, *args, "--json")
        assert code == 0, out
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def b1_docs(self, entity_set: str) -> dict[str, dict[str, Any]]:
        """B1's records that came from JAGGAER, by external reference (asserts none is there twice)."""
        docs: dict[str, dict[str, Any]] = {}
        for doc in self.b1.entities(entity_set):
            ref = doc.get("U_JaggaerRef")
            if ref:
                assert ref not in docs, f"{entity_set} {ref} is in SAP B1 twice"
                docs[ref] = doc
        return docs

    def writes(self) -> dict[str, int]:
        """B1's committed writes so far (logins are not writes): total, per method, per entity set and method."""
        counters = self.b1.counters
        out = {"writes": counters["writes"], "POST": 0, "PATCH": 0, "PUT": 0, "DELETE": 0}
        for entity, methods in counters["writes_by_entity"].items():
            for method, count in methods.items():
                out[method] = out.get(method, 0) + count
                out[f"{entity}.{method}"] = count
        return out

    def post_goods_receipt(self, card_code: str, po_entry: int, lines: list[tuple[int, float]]) -> dict[str, Any]:
        """What the warehouse does in B1: a `PurchaseDeliveryNotes` copying PO lines [(LineNum, quantity)]
        (a service document, like the orders the engine posts)."""
        import httpx

        with httpx.Client(base_url=self.b1.service_root("v2") + "/", timeout=30) as client:
            client.post("Login", json=self.b1.login_body()).raise_for_status()
            response = client.post("PurchaseDeliveryNotes", json={
                "CardCode": card_code, "DocType": "dDocument_Service", "Comments": "received at the dock",
                "DocumentLines": [{"BaseType": 22, "BaseEntry": po_entry, "BaseLine": num, "Quantity": qty}
                                  for num, qty in lines],
            })
            assert response.status_code == 201, response.text
            client.post("Logout")
            return response.json()

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace one exact, unique text in a project file (a mapping or rule-table change in git)."""
        path = self.root / relative
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {relative}"
        path.write_text(text.replace(old, new))


@contextlib.contextmanager
def start_stack(tmp_path: Path, *, seed: int = 20, random_seed: int = 7, b1_seed: str = "demo",
                **jaggaer_knobs: Any) -> Iterator[Stack]:
    """Both simulators on free loopback ports (JAGGAER seeded with `seed` orders) and a project copy."""
    from simulators.jaggaer import start_simulator as start_jaggaer
    from simulators.sapb1 import start_simulator as start_sapb1

    root = copy_project(tmp_path / "project")
    with start_sapb1(seed=b1_seed, session_timeout=1800) as b1, \
            start_jaggaer(seed=seed, random_seed=random_seed, history_days=30, **jaggaer_knobs) as jag:
        yield Stack(root, b1, jag)


# -- what the JAGGAER records say, computed without the engine's mapping ---------------------------------


def splits(line: dict[str, Any]) -> list[dict[str, Any]]:
    """The line's accounting splits: [{Account, CostCenter, ..., share}]."""
    out = []
    for group in (line.get("splittableFieldSetGroupList") or {}).get("splittableFieldSetGroup") or []:
        for index_set in group.get("splittableFieldIndexSet") or []:
            for index in (index_set.get("splittableFieldIndexList") or {}).get("splittableFieldIndex") or []:
                values = {v["internalName"]: v.get("value") for v in
                          (index.get("customFieldValueList") or {}).get("customFieldValue") or [] if v.get("internalName")}
                values["share"] = float(index.get("distributionValue", 100))
                out.append(values)
    return out


def expected_costing(line: dict[str, Any]) -> tuple[str, str]:
    """(AccountCode, CostingCode) the rule tables should give a J1P line: its own account, and its cost
    centre (the 60/40 PLANT1/PLANT2 split through the PLANTS distribution rule, else the largest share)."""
    parts = splits(line)
    assert parts, f"line {line.get('lineNumber')} has no accounting split"
    account = parts[0]["Account"]
    shares = sorted((p["CostCenter"], p["share"]) for p in parts)
    if shares == [("PLANT1", 60.0), ("PLANT2", 40.0)]:
        return account, "PLANTS"
    return account, max(parts, key=lambda p: p["share"])["CostCenter"]


def po_lines(po: dict[str, Any]) -> list[dict[str, Any]]:
    return (po.get("lineList") or {}).get("purchaseOrderLine") or []


def invoice_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return (invoice.get("lineList") or {}).get("invoiceLine") or []
