"""Who is calling: users and the LMS by JWT, vendors by Standard Webhooks signature."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import jwt
from standardwebhooks import Webhook, WebhookVerificationError

from config import ProviderConfig, Settings

# The audience of the tokens this server issues to vendors (api/vendor_tokens.py).
VENDOR_AUDIENCE = "proctorq:edx-rest-vendor"


class Unauthenticated(Exception):
    """401: no credentials, or bad ones. The message is the answer's detail."""


@dataclass(frozen=True)
class Caller:
    """A user or the LMS, as its token says (claims as an Open edX LMS issues them)."""

    user_id: int
    username: str
    email: str
    is_staff: bool


class _VerifiedTokens:
    """Tokens this process has verified, with their caller, until they expire.

    The LMS sends many requests with one token: its signature is checked on the first, and
    the next ones find it here. Only tokens that passed every check are kept, with the
    settings that passed them; an expired one is dropped when it is next shown.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._known: dict[str, tuple[Settings, float, Caller]] = {}
        self._size = size

    def get(self, token: str, settings: Settings) -> Caller | None:
        found = self._known.get(token)
        if found is None:
            return None
        checked_with, expires, caller = found
        if checked_with is not settings or time.time() >= expires:
            del self._known[token]
            return None
        return caller

    def keep(self, token: str, settings: Settings, expires: float, caller: Caller) -> None:
        if len(self._known) >= self._size:
            self._known.clear()
        self._known[token] = (settings, expires, caller)


verified_tokens = _VerifiedTokens()


def read_token(authorization: str | None, settings: Settings) -> Caller:
    if not authorization:
        raise Unauthenticated("Authentication credentials were not provided.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "jwt") or not token:
        raise Unauthenticated("Use an Authorization header of the form 'Bearer <JWT>'.")
    caller = verified_tokens.get(token, settings)
    if caller is None:
        caller, expires = _verify(token, settings)
        verified_tokens.keep(token, settings, expires, caller)
    return caller


def _verify(token: str, settings: Settings) -> tuple[Caller, float]:
    """The caller a token names, and when it expires; every check a token must pass."""
    key = settings.jwt_key
    if key is None:
        raise Unauthenticated("This server has no key to check tokens with.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={
                "require": ["exp"],
                "verify_aud": settings.jwt_audience is not None,
                "verify_iss": settings.jwt_issuer is not None,
            },
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The token has expired.") from None
    except (jwt.InvalidTokenError, jwt.InvalidKeyError, ValueError):
        raise Unauthenticated("The token is not valid.") from None
    if claims.get("aud") == VENDOR_AUDIENCE:
        raise Unauthenticated("A vendor's token is not accepted here: it names no user.")
    if claims.get("is_restricted", False) is not False and not settings.jwt_allow_restricted:
        # An Open edX restricted application's token acts for a user only within scopes and
        # filters proctorq does not read; accepting it would give it the user's full rights.
        # A 401 like any credential not accepted here (every user route documents one).
        raise Unauthenticated(
            "Tokens of restricted applications (is_restricted) are not accepted here."
        )
    return _caller(claims), float(claims["exp"])


def _caller(claims: dict[str, Any]) -> Caller:
    user_id = claims.get("user_id")
    username = claims.get("preferred_username")
    email = claims.get("email")
    administrator = claims.get("administrator", False)
    if (
        not isinstance(user_id, int)
        or isinstance(user_id, bool)
        or not 1 <= user_id < 2**63
        or not isinstance(username, str)
        or not username
        or len(username) > 150
        or not isinstance(email, str)
        or len(email) > 254
        or not isinstance(administrator, bool)
        or not storable(username + email)
    ):
        raise Unauthenticated(
            "The token must carry user_id (integer), preferred_username and email "
            "(strings) and administrator (boolean), as the LMS issues them."
        )
    return Caller(user_id=user_id, username=username, email=email, is_staff=administrator)


def storable(text: str) -> bool:
    """Whether the database can hold this text: no NUL, and no lone surrogate (JSON's
    `\\ud800` escapes make those; UTF-8 cannot encode them)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def _webhooks(secrets: tuple[str, ...]) -> tuple[Webhook, ...]:
    return tuple(Webhook(secret) for secret in secrets)


def verify_webhook(config: ProviderConfig, body: bytes, headers: dict[str, str]) -> str:
    """Check a Standard Webhooks signature with any of the provider's secrets (rotation).

    Returns the webhook id. Nothing is looked up before this has passed.
    """
    needed = ("webhook-id", "webhook-timestamp", "webhook-signature")
    missing = [name for name in needed if not headers.get(name)]
    if missing:
        raise Unauthenticated(f"The webhook is not signed: missing {', '.join(missing)}.")
    signed = {name: headers[name] for name in needed}
    why = "The webhook signature does not match."
    for webhook in _webhooks(config.secrets):
        try:
            webhook.verify(body, signed, json_parse=False)
        except WebhookVerificationError as exc:
            if "timestamp" in str(exc).lower():
                why = "The webhook timestamp is outside the 5-minute tolerance."
            continue
        except ValueError:  # malformed headers or a body that is not text
            continue
        return headers["webhook-id"]
    raise Unauthenticated(why)
