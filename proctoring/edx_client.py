"""Our side of edx-proctoring's REST protocol: calls to a vendor, with its OAuth2 token
(docs/behaviour.md, "Vendors that speak edx-proctoring's REST protocol").

A token is kept per provider in the process until shortly before it expires, and fetched once
again when the vendor answers 401. What an answer means (done, never, try again) is decided
here; the outbox books it (proctoring/vendor_calls.py).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from config import ProviderConfig
from proctoring.http import RetryLater, judge_answer

# A token this close to its expiry is fetched again before a call.
REFRESH_BEFORE_SECONDS = 60.0
# Words of a registration answer that mean the learner may not be proctored yet.
ONBOARDING_WORDS = frozenset(
    {"onboarding_missing", "onboarding_pending", "onboarding_failed", "onboarding_expired"}
)


def obscured_user_id(user_id: int, provider: str, key: str) -> str:
    """edx-proctoring's ``obscured_user_id``: HMAC-SHA1 keyed with the ASCII key over
    ``"{user_id}{provider}"``, 40 lowercase hex characters."""
    message = f"{user_id}{provider}".encode()
    return hmac.new(key.encode("ascii"), message, hashlib.sha1).hexdigest()


@dataclass(frozen=True)
class Call:
    """One call to a vendor. ``done_on`` lists the statuses besides 2xx that end it well."""

    provider: str
    method: str
    path: str
    body: Mapping[str, Any] | None = None
    done_on: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Answer:
    """A vendor's answer that ended a call: its JSON (or None), or why it never will succeed."""

    data: Any = None
    refused: str | None = None


class EdxRestClient:
    """Calls vendors speaking edx-proctoring's REST protocol, one httpx client for all."""

    def __init__(
        self,
        providers: Mapping[str, ProviderConfig],
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._providers = providers
        self._client = client or httpx.Client(timeout=timeout)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, call: Call) -> Answer:
        """Make the call; raises RetryLater when it is worth trying again."""
        config = self._providers.get(call.provider)
        if config is None or not config.speaks_edx_rest or config.base_url is None:
            return Answer(refused=f"provider {call.provider!r} does not speak edx-rest")
        who = f"vendor {call.provider}"
        response = self._send(config, call, self._token(call.provider, config))
        if response.status_code == 401:
            # The vendor forgot our token, or it ran out early: one fresh one, once.
            response = self._send(config, call, self._token(call.provider, config, fresh=True))
            if response.status_code == 401:
                return Answer(refused=f"{who} answered 401 to a fresh token")
        if response.status_code in call.done_on:
            return Answer()
        refused = judge_answer(response, who)
        if refused is not None:
            return Answer(refused=refused)
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
        return Answer(data=data)

    def _send(self, config: ProviderConfig, call: Call, token: str) -> httpx.Response:
        try:
            return self._client.request(
                call.method,
                f"{config.base_url}{call.path}",
                json=call.body,
                headers={"Authorization": f"JWT {token}"},
            )
        except httpx.HTTPError as exc:
            raise RetryLater(f"vendor {call.provider} unreachable: {type(exc).__name__}") from exc

    def _token(self, provider: str, config: ProviderConfig, *, fresh: bool = False) -> str:
        with self._lock:
            kept = self._tokens.get(provider)
        if kept is not None and not fresh and kept[1] - REFRESH_BEFORE_SECONDS > time.monotonic():
            return kept[0]
        assert config.client_id is not None
        assert config.client_secret is not None
        who = f"vendor {provider}'s token endpoint"
        try:
            response = self._client.post(
                f"{config.base_url}/oauth2/access_token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": config.client_id,
                    "client_secret": config.client_secret.get_secret_value(),
                    "token_type": "jwt",
                },
            )
        except httpx.HTTPError as exc:
            raise RetryLater(f"{who} unreachable: {type(exc).__name__}") from exc
        refused = judge_answer(response, who)
        if refused is not None:
            # Our credentials may be fixed in the vendor's configuration while we wait.
            raise RetryLater(refused)
        try:
            answer = response.json()
            token, expires_in = str(answer["access_token"]), float(answer["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise RetryLater(f"{who} gave no access_token and expires_in") from None
        with self._lock:
            self._tokens[provider] = (token, time.monotonic() + expires_in)
        return token

    def close(self) -> None:
        self._client.close()
