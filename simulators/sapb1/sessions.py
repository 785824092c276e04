"""B1SESSION sessions with an idle timeout (contract §2.4)."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass


@dataclass
class Session:
    id: str
    user: str
    company: str
    last_seen: float


class Sessions:
    def __init__(self, timeout_seconds: float = 1800.0, clock=time.monotonic) -> None:
        self.timeout = float(timeout_seconds)
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    @property
    def timeout_minutes(self) -> int:
        """What Login reports: whole minutes, rounded up, at least 1."""
        return max(1, math.ceil(self.timeout / 60))

    def create(self, user: str, company: str) -> Session:
        session = Session(str(uuid.uuid4()), user, company, self.clock())
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session, or None if unknown, logged out or idle longer than the timeout."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if self.clock() - session.last_seen > self.timeout:
            del self._sessions[session_id]
            return None
        return session

    def touch(self, session: Session) -> None:
        session.last_seen = self.clock()

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def expire_all(self) -> int:
        count = len(self._sessions)
        self._sessions.clear()
        return count

    def __len__(self) -> int:
        return len(self._sessions)
