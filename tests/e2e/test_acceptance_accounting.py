"""Every record accounted for, as in `make demo`: each JAGGAER record is filtered out at the source, set
aside at extraction, or staged; each staged record ends in exactly one outcome of the run report and of
`ml-connector run`'s summary table, and has one ledger row whose status says the same."""

from __future__ import annotations

import io
from collections import Counter

from engine.state import db
from tests.e2e.project_fixture import start_stack

# ledger status of each run-report outcome (found: an existing B1 record adopted; unchanged: nothing to send)
STATUS_OF = {"created": "synced", "updated": "synced", "found": "synced", "unchanged": "synced",
             "waiting": "waiting", "quarantined": "quarantined", "ignored": "ignored",
             "not_applied": "not_applied", "failed": "failed"}


def table_rows(report) -> dict[str, dict[str, int]]:
    """`ml-connector run`'s summary table: pipeline -> column -> number."""
    from rich.console import Console

    from engine.cli.run import print_report

    out = io.StringIO()
    print_report(report, Console(file=out, width=250))
    lines = out.getvalue().splitlines()
    header = [c.strip() for c in next(line for line in lines if line.startswith("┃")).split("┃")[1:-1]]
    rows = {}
    for line in lines:
        if line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            rows[cells[0]] = {name: int(value) for name, value in zip(header[1:], cells[1:], strict=True)}
    return rows


def staged_count(state, pipeline: str) -> int:
    with db.connect(state, read_only=True) as conn:
        return conn.execute(f'SELECT count(*) FROM staging."{pipeline}"').fetchone()[0]


def test_every_record_of_the_demo_lands_in_exactly_one_bucket(tmp_path):
    with start_stack(tmp_path, seed=200) as stack:  # the demo's data: `make demo` shows these numbers
        jag = stack.jag
        source = {"purchase_orders": [po["header"] for po in jag.purchase_orders()],
                  "invoices": [inv["header"] for inv in jag.invoices()],
                  "suppliers": [s["returnCompanyInfo"] for s in jag.suppliers()]}
        filtered = {"purchase_orders": sum(h["workflowStatus"] != "Completed" for h in source["purchase_orders"]),
                    "invoices": sum(h["workflowStatus"] != "Completed" for h in source["invoices"]),
                    "suppliers": sum(s["type"] != "SELLER" for s in source["suppliers"])}
        left_out = {"purchase_orders": {str(h["purchaseOrderId"]) for h in source["purchase_orders"]
                                        if h["workflowStatus"] == "Completed" and h["poStatus"] == "Cancelled"},
                    "invoices": {str(h["invoiceId"]) for h in source["invoices"]
                                 if h["workflowStatus"] == "Completed" and h["invoiceType"] != "Invoice"},
                    "suppliers": set()}

        report = stack.run()
        assert report.ok, report.problems
        # the supplier write-back reads SAP B1's business partners as the run leaves them: customers are not read,
        # vendors that did not come from JAGGAER are left out by its mapping
        partners = stack.b1.entities("BusinessPartners")
        source["suppliers_to_jaggaer"] = partners
        filtered["suppliers_to_jaggaer"] = sum(bp["CardType"] != "cSupplier" for bp in partners)
        left_out["suppliers_to_jaggaer"] = {bp["CardCode"] for bp in partners
                                            if bp["CardType"] == "cSupplier" and not bp.get("U_JaggaerRef")}
        table = table_rows(report)
        ledger_status = Counter((r["pipeline"], r["status"]) for r in stack.audit(
            "SELECT pipeline, status FROM ledger"))
        for p in report.pipelines:
            name = p.name
            # read from JAGGAER = staged + set aside at extraction; the rest the source filter leaves in JAGGAER
            staged, invalid = report.staged[name], report.extract_quarantined.get(name, 0)
            assert staged + invalid + filtered[name] == len(source[name]), name
            assert staged == staged_count(stack.state, name), name
            # a first run plans every staged record; each ends in exactly one outcome
            outcomes = p.outcomes
            assert p.planned_total == staged == sum(outcomes.values()), (name, outcomes)
            assert {f.ref for f in p.ignored} == left_out[name] and outcomes["ignored"] == len(left_out[name])
            # the ledger has one row per staged record, its status the outcome's
            expected = Counter()
            for outcome, count in outcomes.items():
                expected[STATUS_OF[outcome]] += count
            assert {s: n for (pl, s), n in ledger_status.items() if pl == name} == +expected, name
            # and `ml-connector run` prints the same numbers, which add up
            row = table[name]
            assert (row["new/chg"], row["planned"], row["ignored"], row["created"]) == (
                staged, staged, len(left_out[name]), outcomes["created"])
            assert row["planned"] == sum(row[c] for c in ("created", "updated", "found", "same", "wait", "quar.",
                                                          "ignored", "failed")), (name, row)
        # the demo's numbers: one order and three invoices not Completed in JAGGAER (not read), three
        # cancelled orders and three credit memos left out by the mappings
        assert {n: (report.staged[n], filtered[n], len(left_out[n])) for n in source} == {
            "purchase_orders": (199, 1, 3), "invoices": (150, 3, 3), "suppliers": (6, 0, 0),
            "suppliers_to_jaggaer": (10, 1, 4)}
        assert {(r["pipeline"], r["external_ref"]) for r in stack.audit("ignored")} == {
            (n, ref) for n, refs in left_out.items() for ref in refs}

        # nothing changed: nothing planned again (ignored records included), nothing written
        again = stack.run()
        assert again.writes == 0 and [p.planned_total for p in again.pipelines] == [0, 0, 0, 0]
        assert all(p.ignored == [] for p in again.pipelines)
