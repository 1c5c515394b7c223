"""What an HTTP answer means to a follow-up that called out: done, never, or try again."""

from __future__ import annotations

import email.utils
import time

import httpx

# Client errors that say "not now" rather than "never" (docs/behaviour.md, "Credit").
TRY_AGAIN = frozenset({408, 409, 425, 429})


class RetryLater(Exception):
    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


def judge_answer(response: httpx.Response, who: str) -> str | None:
    """None for a 2xx; raises RetryLater for an answer worth repeating the call after (a 5xx,
    408/409/425/429, honouring Retry-After); else why the call will never succeed."""
    if response.is_success:
        return None
    if response.status_code in TRY_AGAIN or response.status_code >= 500:
        raise RetryLater(
            f"{who} answered {response.status_code}",
            after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    return f"{who} answered {response.status_code}: {response.text[:500]}"


def retry_after_seconds(value: str | None) -> float | None:
    """Read a Retry-After header: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= 9:  # ASCII, under 32 years
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
