"""The settings the tests run under: three vendors, a JWT secret, and no outside services.

``TEST_ENV`` is what the suite sets for its whole session (tests/conftest.py), what every
process a ``Stack`` starts is given, and what the benchmarks set for themselves.
"""

from __future__ import annotations

import base64
import json


def webhook_secret(name: str) -> str:
    """A Standard Webhooks key of 24 to 64 bytes, as the settings require."""
    return "whsec_" + base64.b64encode(f"{name}-signing-key-for-the-tests".encode()).decode()


CLEAN_WORDS = {
    "Clean": "passed",
    "Rules Violation": "violation",
    "Suspicious": "suspicious",
    "Not Reviewed": "not_reviewed",
}

PROVIDERS = {
    # The default vocabulary, a second review required, time-outs kept only while created.
    "acme": {"secrets": [webhook_secret("acme-old"), webhook_secret("acme")]},
    # A vendor speaking its own words, that keeps the timed-out state.
    "cleanview": {
        "secrets": [webhook_secret("cleanview")],
        "review_statuses": CLEAN_WORDS,
        "passing": ["passed"],
        "allow_timed_out_state": True,
    },
    # No second review, and time-outs always become submitted.
    "strict": {
        "secrets": [webhook_secret("strict")],
        "require_second_review": False,
        "allow_timed_out_state": False,
    },
}

JWT_SECRET = "a-test-jwt-secret-that-is-long-enough-for-hs256"

TEST_ENV = {
    "PROCTORQ_PROVIDERS": json.dumps(PROVIDERS),
    "PROCTORQ_DEFAULT_PROVIDER": "acme",
    "PROCTORQ_JWT_SECRET": JWT_SECRET,
    "PROCTORQ_SUPPORT_URL": "https://support.example.test/",
    "PROCTORQ_EMAIL_FROM": "proctorq <noreply@proctorq.test>",
}

# Set on a developer's machine, these would send the tests' mail, credit calls or data to it.
UNSET = ("PROCTORQ_SMTP_URL", "PROCTORQ_CREDIT_WEBHOOK_URL", "PROCTORQ_DATABASE_URL")
