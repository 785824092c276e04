"""SAP Business One Service Layer: URL validation, session, error envelope, client, setup steps."""

from engine.sapb1.batch import BatchRequest, BatchResult, ChangeSet
from engine.sapb1.client import SapB1Client
from engine.sapb1.dates import date_literal, format_date, parse_date
from engine.sapb1.errors import LoginError, ServiceLayerError, TransportError
from engine.sapb1.session import Secret, SessionInfo
from engine.sapb1.setup import ReferenceCodes, UserField, ensure_user_field, fetch_reference_codes
from engine.sapb1.url import ServiceRoot, entity_path, odata_literal, quote_key

__all__ = [
    "BatchRequest",
    "BatchResult",
    "ChangeSet",
    "LoginError",
    "ReferenceCodes",
    "SapB1Client",
    "Secret",
    "ServiceLayerError",
    "ServiceRoot",
    "SessionInfo",
    "TransportError",
    "UserField",
    "date_literal",
    "entity_path",
    "ensure_user_field",
    "fetch_reference_codes",
    "format_date",
    "odata_literal",
    "parse_date",
    "quote_key",
]
