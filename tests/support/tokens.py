"""Credentials as the LMS and the vendors send them: JWT bearer tokens, signed webhooks."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import jwt
from standardwebhooks import Webhook

from tests.support.environment import JWT_SECRET, webhook_secret


def token(
    user_id: int,
    *,
    staff: bool = False,
    username: str | None = None,
    email: str | None = None,
    expires_in: float = 600,
    key: str = JWT_SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    payload = {
        "user_id": user_id,
        "preferred_username": username or f"user{user_id}",
        "email": email or f"user{user_id}@example.test",
        "administrator": staff,
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in),
        **claims,
    }
    return jwt.encode(payload, key, algorithm=algorithm)


def raw_bearer(**claims: Any) -> dict[str, str]:
    """A token with exactly these claims (and a valid exp unless given)."""
    claims.setdefault("exp", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


def bearer(user_id: int, **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, **kw)}"}


def signed(
    provider: str,
    body: Any,
    *,
    webhook_id: str | None = None,
    secret: str | None = None,
    at: dt.datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A body and the Standard Webhooks headers a vendor sends with it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or dt.datetime.now(dt.UTC)
    signature = Webhook(secret or webhook_secret(provider)).sign(webhook_id, at, raw.decode())
    return raw, {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
