"""What makes a secret no secret: a placeholder, a published example, or too short a key."""

from __future__ import annotations

import re

# A secret anyone can read in an example is no secret. The words mark every placeholder of
# .env.example (tests/test_compose.py holds the file to that); the published values are the
# README's vendor key, which is also the Standard Webhooks documentation's.
_PLACEHOLDER = re.compile(r"(change|replace)[-_ ]?me", re.IGNORECASE)
PUBLISHED_EXAMPLES = frozenset({"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})

# RFC 7518 §3.2: an HS256 key is at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32
# Standard Webhooks: a signing key is 24 to 64 bytes, once decoded.
WEBHOOK_KEY_BYTES = (24, 64)


def placeholder_reason(value: str | bytes) -> str | None:
    """Why this secret is a placeholder, or None. Never quotes the value itself."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if text.strip() in PUBLISHED_EXAMPLES:
        return "it is the published example value"
    found = _PLACEHOLDER.search(text)
    if found:
        return f"it contains {found.group(0)!r}"
    return None
