"""`ml-connector serve`: pipelines on their cadence, for one or many customers, until stopped.

| Module | Concern |
|---|---|
| `scheduler` | `schedule:` blocks (every / cron), what is due, back-off after a failure (pure) |
| `workspace` | which customers (a workspace's subdirectories, or `--project` dirs) and what each schedules |
| `child` | one run in a child process: `run_pipelines`, summarized as a redacted `RunResult` |
| `metrics` | the Prometheus registry and its updates from a `RunResult` |
| `health` | the loopback HTTP endpoint: `/healthz`, `/metrics`, the webhook receiver |
| `webhooks` | SAP B1 event subscriptions, handshake and notification authentication, nudging pipelines |
| `logs` | structured logs: one line per event, JSON lines or text, redacted |
| `service` | the running service: APScheduler jobs, one worker thread per customer, shutdown |
"""
