"""SAP Business One Service Layer: URL validation, session, error envelope, client, setup steps.

Names are imported on first use (PEP 562), so `engine.sapb1.url` (what `validate` needs) does not pull
in the HTTP client and its libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.sapb1.batch import BatchRequest, BatchResult, ChangeSet
    from engine.sapb1.client import SapB1Client
    from engine.sapb1.dates import date_literal, format_date, parse_date
    from engine.sapb1.errors import LoginError, ServiceLayerError, TransportError
    from engine.sapb1.session import Secret, SessionInfo
    from engine.sapb1.setup import ReferenceCodes, UserField, ensure_user_field, fetch_reference_codes
    from engine.sapb1.url import ServiceRoot, entity_path, odata_literal, quote_key

_WHERE = {
    "batch": ("BatchRequest", "BatchResult", "ChangeSet"),
    "client": ("SapB1Client",),
    "dates": ("date_literal", "format_date", "parse_date"),
    "errors": ("LoginError", "ServiceLayerError", "TransportError"),
    "session": ("Secret", "SessionInfo"),
    "setup": ("ReferenceCodes", "UserField", "ensure_user_field", "fetch_reference_codes"),
    "url": ("ServiceRoot", "entity_path", "odata_literal", "quote_key"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "BatchRequest", "BatchResult", "ChangeSet", "LoginError", "ReferenceCodes", "SapB1Client", "Secret",
    "ServiceLayerError", "ServiceRoot", "SessionInfo", "TransportError", "UserField", "date_literal",
    "entity_path", "ensure_user_field", "fetch_reference_codes", "format_date", "odata_literal", "parse_date",
    "quote_key",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.sapb1' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"engine.sapb1.{module}"), name)
    globals()[name] = value
    return value
