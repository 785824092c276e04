"""`B1Port` over `engine.sapb1.SapB1Client`: the loader's few calls, with batched reference lookups."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.sapb1 import SapB1Client, ServiceLayerError, entity_path, odata_literal
from engine.sapb1.entities import ENTITIES

# References per `$filter` (`U_JaggaerRef eq 'a' or …`): keeps the URL short (~2 KB), cuts lookups ~40x.
LOOKUP_CHUNK = 40
NO_CONTENT = {"Prefer": "return-no-content"}


class SlPort:
    def __init__(self, client: SapB1Client, *, page_size: int = 200) -> None:
        self.client = client
        self.page_size = page_size

    async def create(self, entity_set: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST; the created entity (at least its key and lines). A payload without lines whose key is in it
        (a business partner's CardCode) asks for `Prefer: return-no-content`: B1 then answers 204 with a
        `Location` instead of echoing the whole entity, which the loader would only parse to throw away."""
        profile = ENTITIES.get(entity_set)
        key_field = profile.key_field if profile is not None and profile.create_without_content else None
        if key_field is None or payload.get(key_field) is None:
            return await self.client.create(entity_set, payload)
        response = await self.client.request("POST", entity_set, json=payload, headers=NO_CONTENT)
        if response.status_code == 201 and response.content:
            return response.json()
        if not response.headers.get("location"):
            raise ServiceLayerError(response.status_code, None, "SAP B1 answered the create without a Location: "
                                    "nothing was created (a draft, under an approval procedure?)")
        return {key_field: payload[key_field]}

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

        async def one(chunk: list[str]) -> list[dict[str, Any]]:
            condition = " or ".join(f"{ref_field} eq {odata_literal(ref)}" for ref in chunk)
            return [row async for row in self.client.query(entity_set, filter=condition, select=fields,
                                                           page_size=self.page_size)]

        # the chunks of one lookup go out together (the client's concurrency limit still applies)
        pages = await asyncio.gather(*(one(unique[i:i + LOOKUP_CHUNK]) for i in range(0, len(unique), LOOKUP_CHUNK)))
        for row in (row for page in pages for row in page):
            ref = row.get(ref_field)
            if ref in found:
                found[ref].append(row)
        return found

    async def count(self, entity_set: str, filter: str) -> int:  # noqa: A002
        return await self.client.count(entity_set, filter)

    async def query(
        self, entity_set: str, *, filter: str | None = None, select: list[str] | None = None,  # noqa: A002
        orderby: str | None = None,
    ) -> list[dict[str, Any]]:
        return [row async for row in self.client.query(entity_set, filter=filter, select=select, orderby=orderby,
                                                        page_size=self.page_size)]
