"""Tokens of vendors speaking edx-proctoring's REST protocol: issued to a callback client for
its OAuth2 client credentials (RFC 6749 §4.4), and read on the vendor's calls.

A token is a JWT signed with the secret of the client it was issued to, named in its header
(`kid`), so it is checked against that client's secret alone, from the settings, before
anything is looked up. Its audience marks it as a vendor's: a user's token is never one, and
`api.auth.read_token` refuses a vendor's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt

from api.auth import VENDOR_AUDIENCE, Unauthenticated
from config import Settings

LIFETIME_SECONDS = 3600


class TokenRequestError(Exception):
    """An RFC 6749 §5.2 error: its code, and the HTTP status it is answered with."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.code = code
        self.status = status

    @property
    def description(self) -> str:
        """One sentence for a person reading the answer (``error_description``, ``detail``)."""
        return TOKEN_ERRORS.get(self.code, "The token request was refused.")


TOKEN_ERRORS = {
    "invalid_client": "The client id or secret is not one proctorq issued to a vendor.",
    "invalid_request": "Send grant_type, client_id and client_secret once each, form-encoded.",
    "unsupported_grant_type": "Only grant_type=client_credentials is supported.",
}


def read_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; a repeated or unreadable one is refused."""
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise TokenRequestError("invalid_request", 400) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 §3.2: parameters must not be repeated
            raise TokenRequestError("invalid_request", 400)
        form[name] = value
    return form


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """Client credentials in an HTTP Basic header (RFC 6749 §2.3.1), if given."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise TokenRequestError("invalid_client", 401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise TokenRequestError("invalid_client", 401)
    return unquote(client_id), unquote(secret)


def issue_token(settings: Settings, body: bytes, authorization: str | None) -> dict[str, Any]:
    """The token answer for a client-credentials request, or a TokenRequestError."""
    form = read_form(body)
    credentials = basic_credentials(authorization) or (
        form.get("client_id", ""),
        form.get("client_secret", ""),
    )
    client_id, secret = credentials
    issued = settings.callback_client(client_id) if client_id else None
    if issued is None or not hmac.compare_digest(secret.encode(), issued[1].encode()):
        raise TokenRequestError("invalid_client", 401)
    grant = form.get("grant_type")
    if not grant:
        raise TokenRequestError("invalid_request", 400)
    if grant != "client_credentials":
        raise TokenRequestError("unsupported_grant_type", 400)
    provider, key = issued
    now = int(time.time())
    claims = {
        "iss": "proctorq",
        "aud": VENDOR_AUDIENCE,
        "sub": client_id,
        "provider": provider,
        "iat": now,
        "exp": now + LIFETIME_SECONDS,
    }
    token = jwt.encode(claims, key, algorithm="HS256", headers={"kid": client_id})
    return {
        "access_token": token,
        "token_type": "JWT",
        "expires_in": LIFETIME_SECONDS,
        "scope": "",
    }


def read_vendor_token(authorization: str | None, settings: Settings) -> str:
    """The provider a vendor's `JWT <token>` (or `Bearer <token>`) names; Unauthenticated
    when there is none, or it is not one this server issued, or it has expired."""
    if not authorization:
        raise Unauthenticated("Authentication credentials were not provided.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() not in ("jwt", "bearer") or not token:
        raise Unauthenticated("Use an Authorization header of the form 'JWT <token>'.")
    try:
        client_id = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise Unauthenticated("The token is not valid.") from None
    issued = settings.callback_client(client_id) if isinstance(client_id, str) else None
    if issued is None:
        raise Unauthenticated("The token was not issued to a vendor by this server.")
    provider, key = issued
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=VENDOR_AUDIENCE,
            issuer="proctorq",
            options={"require": ["exp", "aud", "sub", "provider"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The token has expired.") from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthenticated("The token is not valid.") from None
    if claims.get("provider") != provider or claims.get("sub") != client_id:
        raise Unauthenticated("The token is not valid.")
    return provider
