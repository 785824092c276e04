"""Keycloak-shaped client-credentials token endpoint and bearer checks (reference §3).

Tokens are HS256 JWTs with `iss`, `azp`, `tenant`, `iat`, `exp`, `jti`. Expiry uses wall-clock time
(the simulator's data clock knob does not expire tokens). A token is valid only under the tenant
that issued it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from simulators.http import Request, Response

TOKEN_PATH = "/auth/realms/J1p-integrations/protocol/openid-connect/token"
REALM_PATH = "/auth/realms/J1p-integrations"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Claims:
    tenant: str
    client_id: str
    jti: str
    exp: float


class TokenIssuer:
    """Signs and verifies the simulator's access tokens."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def issue(self, tenant: str, client_id: str, issuer: str, lifetime: int) -> str:
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT", "kid": "sim-hs256"}
        claims = {
            "exp": now + lifetime, "iat": now, "jti": str(uuid.uuid4()), "iss": issuer,
            "typ": "Bearer", "azp": client_id, "tenant": tenant, "scope": "profile email",
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def verify(self, token: str, tenant: str) -> Claims | None:
        """The token's claims when it is well-formed, signed by us, unexpired and of `tenant`."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if claims.get("tenant") != tenant or float(claims.get("exp", 0)) <= time.time():
            return None
        return Claims(claims["tenant"], claims.get("azp", ""), claims.get("jti", ""), float(claims["exp"]))


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized(body_mode: str) -> Response:
    """401 as J1P answers it: `Content-Type: ; charset=UTF-8`, no WWW-Authenticate, empty body."""
    body = b'{"error":"unauthorized"}' if body_mode == "json" else b""
    return Response(401, [("Content-Type", "; charset=UTF-8")], body)


def _keycloak_error(status: int, error: str, description: str) -> Response:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return Response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                             ("Pragma", "no-cache")], body)


def client_credentials(request: Request) -> tuple[dict[str, str], str | None, str | None]:
    """(form fields, client_id, client_secret) from the form body or HTTP Basic."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form: dict[str, str] = {}
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            client_id, client_secret = client_id or user, client_secret or password
        except (ValueError, binascii.Error, UnicodeDecodeError):
            pass
    return form, client_id, client_secret


def token_endpoint(request: Request, tenant: Any, issuer_base: str, tokens: TokenIssuer, lifetime: int) -> Response:
    """POST …/openid-connect/token for `tenant` (an object with name, client_id, client_secret)."""
    if request.method != "POST":
        return Response(405, [], b"")
    form, client_id, client_secret = client_credentials(request)
    grant_type = form.get("grant_type")
    if not grant_type:
        return _keycloak_error(400, "invalid_request", "Missing form parameter: grant_type")
    if (tenant is None or client_id != tenant.client_id
            or not hmac.compare_digest((client_secret or "").encode(), tenant.client_secret.encode())):
        return _keycloak_error(401, "invalid_client", "Invalid client or Invalid client credentials")
    if grant_type != "client_credentials":
        return _keycloak_error(400, "unsupported_grant_type", "Unsupported grant_type")
    token = tokens.issue(tenant.name, client_id, f"{issuer_base}{REALM_PATH}", lifetime)
    body = {
        "access_token": token,
        "expires_in": lifetime,
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": "profile email",
    }
    return Response(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                          ("Pragma", "no-cache")], json.dumps(body).encode())
