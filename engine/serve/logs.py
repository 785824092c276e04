"""Structured logs of `ml-connector serve`: one line per event, JSON lines (`--log-format json`) or text.

    log = configure("json")                       # on stderr
    event(log, "run", customer="acme", outcome="ok", seconds=3.2)
    -> {"ts": "2024-05-02T13:42:07.118Z", "level": "info", "event": "run", "customer": "acme", "outcome": "ok", ...}

Every value is passed through `engine.secrets.redact` before it is written: text that came from SAP B1
or JAGGAER (error messages, references) never carries a password, token or session cookie into a log.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from engine.secrets import redact

LOGGER = "ml_connector.serve"
FORMATS = ("text", "json")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return getattr(record, "fields", None) or {}


def _stamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": _stamp(record), "level": record.levelname.lower(), "event": redact(record.getMessage())}
        line.update(redact(_fields(record)))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`ts LEVEL event key=value ...` (values with spaces quoted)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_stamp(record), f"{record.levelname:<7}", redact(record.getMessage())]
        for key, value in redact(_fields(record)).items():
            if value is None or value == "" or value == [] or value == {}:
                continue
            text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
            if isinstance(value, str) and (not text or any(c.isspace() or c in "\"=" for c in text)):
                text = json.dumps(text, ensure_ascii=False)
            parts.append(f"{key}={text}")
        out = " ".join(parts)
        if record.exc_info:
            out += "\n" + redact(self.formatException(record.exc_info))
        return out


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: str = "text", stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Logger:
    """The serve logger, writing to `stream` (stderr) in `fmt`; the engine's own loggers (warnings of the
    SAP B1 and JAGGAER clients) go the same way."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # "Running job ..." at every tick
    log = logging.getLogger(LOGGER)
    log.setLevel(level)
    return log


def event(log: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (redacted by the formatter)."""
    log.log(level, name, extra={"fields": fields})
