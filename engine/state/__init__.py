"""The customer's state file (one DuckDB file per project): every table and every statement over it.

| module | tables |
|---|---|
| `db` | opening the file (single writer, waits naming the holder; `StateCorrupt`) |
| `staging` | `staging.<pipeline>`: the raw records extraction merged in |
| `cursors` | `extract_state`: each source's committed cursor |
| `quarantine` | `quarantine`: records set aside, with stage and reason |
| `ledger` | `ledger`, `events`, `runs`, `crosswalk`: what B1 holds, what was sent, the runs |
| `conflicts` | `conflicts`: a field changed on both sides, or on the side that does not own it |
| `drift` | `drift`: the last reconcile's findings |
| `planning` | what planning reads (staged records, ledger rows, plan hashes) for the pure `engine.plan` |
| `audit` | named read-only queries over all of them; one user `SELECT` on a locked-down connection |

No other module writes SQL over these tables.
"""
