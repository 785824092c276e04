"""What the engine knows of each SAP B1 entity set it writes, in one table (docs/apis/sapb1-service-layer.md §5).

Adding an entity set the engine writes means adding one `EntityProfile` here; the loader, the run's
setup (user fields) and base-document links, adoption and the closed-document rules read it from this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError


@dataclass(frozen=True)
class EntityProfile:
    entity_set: str
    key_field: str  # the entity's key: DocEntry (assigned by B1) or CardCode (ours)
    user_field_table: str  # the B1 table holding its U_ fields (§5.11): OCRD, OPOR, ...
    lines_field: str | None = None  # "DocumentLines" on documents; members numbered by LineNum
    # the key is in the payload and nothing else needs reading back: create with `Prefer: return-no-content`
    create_without_content: bool = False
    # lines are copies of base-document lines made by the loader (invoices from PO / goods-receipt lines): the
    # run links them through `engine.load.links.BaseLinker`; one rendered line may become several B1 lines,
    # so lines are not compared when a record is adopted
    lines_derived: bool = False
    # posted to the books when added (journal entry, stock): amounts are final (-1029 on a change)
    posted: bool = False


ENTITIES: dict[str, EntityProfile] = {p.entity_set: p for p in (
    EntityProfile("BusinessPartners", "CardCode", "OCRD", create_without_content=True),
    EntityProfile("PurchaseOrders", "DocEntry", "OPOR", "DocumentLines"),
    EntityProfile("PurchaseDeliveryNotes", "DocEntry", "OPDN", "DocumentLines", posted=True),
    EntityProfile("PurchaseInvoices", "DocEntry", "OPCH", "DocumentLines", lines_derived=True, posted=True),
)}


def entity_profile(entity_set: str) -> EntityProfile:
    """The profile of an entity set the engine writes; a `ConfigError` naming the known ones otherwise."""
    try:
        return ENTITIES[entity_set]
    except KeyError:
        raise ConfigError(f"the engine does not write SAP B1 {entity_set!r} (it writes {', '.join(ENTITIES)}); "
                          "add its profile to engine/sapb1/entities.py") from None
