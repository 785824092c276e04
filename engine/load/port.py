"""The few Service Layer calls the loader needs, as a protocol.

`engine/load/slport.py` implements it over `engine.sapb1.SapB1Client`; unit tests implement it in
memory. Calls raise the client's own exceptions; `engine.load.classify` sorts them.
"""

from __future__ import annotations

from typing import Any, Protocol


class B1Port(Protocol):
    async def create(self, entity_set: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a new entity; return the created entity (at least its key and lines)."""
        ...

    async def patch(self, entity_set: str, key: Any, payload: dict[str, Any]) -> None:
        """PATCH only the given fields of one entity."""
        ...

    async def get(self, entity_set: str, key: Any, select: list[str] | None = None) -> dict[str, Any]:
        """Read one entity by key (raises a 404/-2028 error when it does not exist)."""
        ...

    async def find_refs(
        self, entity_set: str, ref_field: str, refs: list[str], select: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Look references up with `$filter`; return ref -> entities carrying it (normally 0 or 1)."""
        ...

    async def count(self, entity_set: str, filter: str) -> int:  # noqa: A002
        """How many entities match a `$filter` (`/<Set>/$count`)."""
        ...

    async def query(
        self, entity_set: str, *, filter: str | None = None, select: list[str] | None = None,
        orderby: str | None = None,
    ) -> list[dict[str, Any]]:
        """Read a whole filtered collection, following next links."""
        ...
