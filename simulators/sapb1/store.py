"""In-memory company database with undo-log transactions and optional JSON persistence.

Every write request runs in one transaction (`with store.transaction():`); a `$batch` change set
wraps several requests in one. Records are replaced, never mutated in place (copy on write), so the
undo log only remembers the previous object. Committed transactions bump counters, queue webhook
events and, with `--state FILE`, rewrite the state file atomically.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from simulators.sapb1.entities import ENTITY_SETS, UDF_TABLES, Prop, udf_prop

Key = tuple


class Store:
    def __init__(self, state_file: str | os.PathLike | None = None) -> None:
        self.data: dict[str, dict[Key, dict[str, Any]]] = {name: {} for name in ENTITY_SETS}
        self.sequences: dict[str, int] = {}
        self.settings: dict[str, Any] = {"EnableWebhook": "tNO"}
        self.udfs: dict[str, dict[str, Prop]] = {}
        self.render_cache: dict[tuple[str, Key, bool], tuple[dict, bytes]] = {}
        self.state_file = Path(state_file) if state_file else None
        self._undo: list[Callable[[], None]] | None = None
        self._pending_events: list[dict[str, Any]] = []
        self._pending_writes: list[tuple[str, str]] = []
        self.on_commit: list[Callable[[list[dict[str, Any]]], None]] = []
        self.writes: dict[str, dict[str, int]] = {}
        self.write_total = 0
        self._save_lock = threading.Lock()

    # -- reads ---------------------------------------------------------------------------------

    def get(self, entity_set: str, key: Key) -> dict[str, Any] | None:
        return self.data[entity_set].get(key)

    def all(self, entity_set: str) -> list[dict[str, Any]]:
        return list(self.data[entity_set].values())

    # -- writes (inside a transaction) -----------------------------------------------------------

    def put(self, entity_set: str, key: Key, record: dict[str, Any]) -> None:
        table = self.data[entity_set]
        old = table.get(key)
        table[key] = record
        self._invalidate(entity_set, key)
        self._log(lambda: self._restore(entity_set, key, old))

    def delete(self, entity_set: str, key: Key) -> None:
        table = self.data[entity_set]
        old = table.pop(key, None)
        self._invalidate(entity_set, key)
        self._log(lambda: self._restore(entity_set, key, old))

    def next_number(self, name: str, start: int = 1) -> int:
        value = self.sequences.get(name, start - 1) + 1
        self.set_sequence(name, value)
        return value

    def set_sequence(self, name: str, value: int) -> None:
        previous = self.sequences.get(name)
        self.sequences[name] = value
        self._log(lambda: self._restore_sequence(name, previous))

    def log_undo(self, step: Callable[[], None]) -> None:
        """Run `step` if the current transaction rolls back."""
        self._log(step)

    def set_setting(self, name: str, value: Any) -> None:
        previous = self.settings.get(name)
        self.settings[name] = value
        self._log(lambda: self.settings.__setitem__(name, previous))

    def emit(self, event: dict[str, Any]) -> None:
        """Queue a change event (webhooks); delivered only if the transaction commits."""
        self._pending_events.append(event)

    def count_write(self, entity_set: str, method: str) -> None:
        self._pending_writes.append((entity_set, method))

    def mutable(self, record: dict[str, Any]) -> dict[str, Any]:
        """A deep copy to change and `put` back (copy on write)."""
        return copy.deepcopy(record)

    # -- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._undo is not None:  # nested: the outer transaction decides
            yield
            return
        self._undo = []
        self._pending_events = []
        self._pending_writes = []
        try:
            yield
        except BaseException:
            undo, self._undo = self._undo, None
            for step in reversed(undo):
                step()
            self._pending_events = []
            self._pending_writes = []
            raise
        self._undo = None
        events, self._pending_events = self._pending_events, []
        writes, self._pending_writes = self._pending_writes, []
        for entity_set, method in writes:
            per = self.writes.setdefault(entity_set, {})
            per[method] = per.get(method, 0) + 1
            self.write_total += 1
        if writes:
            self.save()
        if events:
            for callback in self.on_commit:
                callback(events)

    def _log(self, step: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(step)

    def _restore(self, entity_set: str, key: Key, old: dict[str, Any] | None) -> None:
        if old is None:
            self.data[entity_set].pop(key, None)
        else:
            self.data[entity_set][key] = old
        self._invalidate(entity_set, key)

    def _restore_sequence(self, name: str, previous: int | None) -> None:
        if previous is None:
            self.sequences.pop(name, None)
        else:
            self.sequences[name] = previous

    def _invalidate(self, entity_set: str, key: Key) -> None:
        self.render_cache.pop((entity_set, key, False), None)
        self.render_cache.pop((entity_set, key, True), None)

    def clear_cache(self) -> None:
        self.render_cache.clear()

    # -- user-defined fields -----------------------------------------------------------------

    def rebuild_udfs(self) -> None:
        """Recompute the `U_` properties from the UserFieldsMD rows."""
        udfs: dict[str, dict[str, Prop]] = {}
        for row in self.data["UserFieldsMD"].values():
            type_name = UDF_TABLES.get(row["TableName"])
            if type_name:
                prop = udf_prop(row)
                udfs.setdefault(type_name, {})[prop.name] = prop
        self.udfs = udfs
        self.render_cache.clear()

    # -- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "format": 1,
            "sequences": self.sequences,
            "settings": self.settings,
            "data": {name: list(table.values()) for name, table in self.data.items()},
        }

    def save(self) -> None:
        if self.state_file is None:
            return
        text = json.dumps(self.snapshot(), separators=(",", ":"))
        tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
        with self._save_lock:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.state_file)

    def load(self) -> bool:
        """Load the state file if it exists; True when loaded."""
        if self.state_file is None or not self.state_file.exists():
            return False
        state = json.loads(self.state_file.read_text(encoding="utf-8"))
        self.sequences = dict(state.get("sequences", {}))
        self.settings.update(state.get("settings", {}))
        for name, rows in state.get("data", {}).items():
            if name not in ENTITY_SETS:
                continue
            key_names = ENTITY_SETS[name].key
            self.data[name] = {tuple(row[k] for k in key_names): row for row in rows}
        self.rebuild_udfs()
        return True

    def reset(self) -> None:
        self.data = {name: {} for name in ENTITY_SETS}
        self.sequences = {}
        self.settings = {"EnableWebhook": "tNO"}
        self.udfs = {}
        self.render_cache.clear()
        self.writes = {}
        self.write_total = 0
