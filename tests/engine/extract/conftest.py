"""A minimal project (purchase orders only) in a temp dir, for extraction tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.project import Project, load_project

PO_SCHEMA = {
    "type": "object",
    "required": ["header", "lineList"],
    "properties": {
        "header": {"type": "object", "required": ["purchaseOrderId", "lastUpdate"],
                   "properties": {"purchaseOrderId": {"type": "integer"}, "lastUpdate": {"type": "string"},
                                  "currency": {"type": "string"}}},
        "lineList": {"type": "object"},
    },
}

PROJECT = """\
project: test
state: var/state.duckdb
extract: {{commit_every: {commit_every}}}
connections:
  jaggaer:
    kind: jaggaer
    base_url: {{env: JAGGAER_BASE_URL, default: "http://127.0.0.1:8443"}}
    client_id: {{env: JAGGAER_CLIENT_ID}}
    client_secret: {{env: JAGGAER_CLIENT_SECRET}}
    max_concurrency: 4
    retry: {{attempts: 5, backoff_initial: 0.01, backoff_max: 0.05}}
  sapb1:
    kind: sapb1
    service_root: "http://127.0.0.1:50000/b1s/v2"
    company_db: SBODEMOUS
    username: {{env: SAPB1_USERNAME}}
    password: {{env: SAPB1_PASSWORD}}
"""

PIPELINE = """\
name: purchase_orders
source:
  connection: jaggaer
  list: /j1p/api/public/je/v1/purchaseorders
  detail: /j1p/api/public/je/v1/purchaseorders/{{id}}
  records: jepurchaseorderList.jepurchaseorder
  primary_key: header.purchaseOrderId
  cursor: {{filter_key: lastUpdate, field: header.lastUpdate, tiebreak_key: purchaseOrderId, overlap_seconds: {overlap}}}
  filter: workflowStatus==Completed
  schema: schemas/jaggaer/purchase-order.schema.json
mapping: mappings/purchase_order.yaml
target: {{connection: sapb1, entity: PurchaseOrders, external_ref: U_JaggaerRef}}
"""


def make_project(root: Path, *, commit_every: int = 1000, overlap: float = 60, schema: dict | None = None) -> Project:
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "mappings").mkdir(exist_ok=True)
    (root / "schemas" / "jaggaer").mkdir(parents=True, exist_ok=True)
    (root / "ml-connector.yaml").write_text(PROJECT.format(commit_every=commit_every))
    (root / "pipelines" / "purchase_orders.yaml").write_text(PIPELINE.format(overlap=overlap))
    (root / "mappings" / "purchase_order.yaml").write_text("fields: {}\n")
    (root / "schemas" / "jaggaer" / "purchase-order.schema.json").write_text(json.dumps(schema or PO_SCHEMA))
    return load_project(root)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAGGAER_CLIENT_ID", "demo")
    monkeypatch.setenv("JAGGAER_CLIENT_SECRET", "secret")
    monkeypatch.setattr("engine.spec._mapping_problems", lambda path, target_entity: [])
