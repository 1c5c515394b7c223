"""The fields of a provider speaking edx-proctoring's REST protocol, checked at start-up."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from config.secrets import MIN_HS256_SECRET_BYTES, placeholder_reason


def edx_rest_field(field: str, value: Any, protocol: str | None) -> Any:
    """Check one of an edx-rest provider's fields: present exactly when the protocol is
    edx-rest, and no placeholder."""
    if protocol != "edx-rest":
        if value:
            raise ValueError('this field is for a provider with "protocol": "edx-rest" only')
        return value
    if not value:
        raise ValueError(EDX_REST_NEEDS[field])
    if field == "base_url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("base_url must be the vendor's http:// or https:// address")
        return value.rstrip("/")
    if field == "client_secret":
        why = placeholder_reason(value.get_secret_value())
        if why:
            raise ValueError(f"client_secret is a placeholder ({why}); put the vendor's there")
    if field == "callback_clients":
        for client_id, secret in value.items():
            _check_callback_client(client_id, secret.get_secret_value())
    return value


EDX_REST_NEEDS = {
    "base_url": "an edx-rest provider needs base_url, the vendor's address",
    "client_id": "an edx-rest provider needs client_id, issued by the vendor for our calls",
    "client_secret": "an edx-rest provider needs client_secret, issued by the vendor",
    "callback_clients": (
        "an edx-rest provider needs callback_clients, the client id and secret we issue the "
        "vendor for its calls to us"
    ),
}


def _check_callback_client(client_id: str, secret: str) -> None:
    if not client_id or len(client_id) > 100 or not client_id.isprintable():
        raise ValueError("a callback client id must be 1 to 100 printable characters")
    why = placeholder_reason(secret)
    if why:
        raise ValueError(
            f"the secret of callback client {client_id!r} is a placeholder ({why}); "
            "generate one of your own"
        )
    if len(secret.encode()) < MIN_HS256_SECRET_BYTES:
        raise ValueError(
            f"the secret of callback client {client_id!r} must be at least "
            f"{MIN_HS256_SECRET_BYTES} bytes: it signs the vendor's tokens (RFC 7518 §3.2)"
        )
