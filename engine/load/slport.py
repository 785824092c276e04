"""`B1Port` over `engine.sapb1.SapB1Client`: the loader's few calls, with batched reference lookups."""

from __future__ import annotations

from typing import Any

from engine.sapb1 import SapB1Client, entity_path, odata_literal

# References per `$filter` (`U_JaggaerRef eq 'a' or …`): keeps the URL short (~2 KB), cuts lookups ~40x.
LOOKUP_CHUNK = 40


class SlPort:
    def __init__(self, client: SapB1Client, *, page_size: int = 200) -> None:
        self.client = client
        self.page_size = page_size

    async def create(self, entity_set: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create(entity_set, payload)

    async def patch(self, entity_set: str, key: Any, payload: dict[str, Any]) -> None:
        await self.client.patch(entity_path(entity_set, key), payload)

    async def get(self, entity_set: str, key: Any, select: list[str] | None = None) -> dict[str, Any]:
        options = {"select": ",".join(select)} if select else {}
        return await self.client.get(entity_path(entity_set, key), **options)

    async def find_refs(
        self, entity_set: str, ref_field: str, refs: list[str], select: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {ref: [] for ref in refs}
        fields = list(dict.fromkeys([*select, ref_field]))
        unique = list(dict.fromkeys(refs))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            chunk = unique[start : start + LOOKUP_CHUNK]
            condition = " or ".join(f"{ref_field} eq {odata_literal(ref)}" for ref in chunk)
            async for row in self.client.query(entity_set, filter=condition, select=fields, page_size=self.page_size):
                ref = row.get(ref_field)
                if ref in found:
                    found[ref].append(row)
        return found

    async def query(
        self, entity_set: str, *, filter: str | None = None, select: list[str] | None = None,  # noqa: A002
        orderby: str | None = None,
    ) -> list[dict[str, Any]]:
        return [row async for row in self.client.query(entity_set, filter=filter, select=select, orderby=orderby,
                                                        page_size=self.page_size)]
