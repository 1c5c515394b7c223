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

# The callback client proctorq issues the "edxvendor" provider.
EDX_CLIENT = "edxvendor-client"
EDX_CLIENT_SECRET = "edxvendor-callback-secret-long-enough-for-hs256"

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
    # Vendors speaking edx-proctoring's REST protocol. Nothing listens at their addresses:
    # tests of our calls to a vendor start a server of their own and point a provider at it.
    "edxvendor": {
        "protocol": "edx-rest",
        "base_url": "http://127.0.0.1:9/edxvendor",
        "client_id": "proctorq",
        "client_secret": "proctorqsecret",
        "callback_clients": {EDX_CLIENT: EDX_CLIENT_SECRET},
    },
    # One that also signs Standard Webhooks: a provider may speak both protocols.
    "bothways": {
        "protocol": "edx-rest",
        "secrets": [webhook_secret("bothways")],
        "base_url": "http://127.0.0.1:9/bothways",
        "client_id": "proctorq",
        "client_secret": "proctorqsecret",
        "callback_clients": {"bothways-client": "bothways-callback-secret-long-enough-for-hs256"},
    },
}

JWT_SECRET = "a-test-jwt-secret-that-is-long-enough-for-hs256"

TEST_ENV = {
    "PROCTORQ_PROVIDERS": json.dumps(PROVIDERS),
    "PROCTORQ_DEFAULT_PROVIDER": "acme",
    "PROCTORQ_JWT_SECRET": JWT_SECRET,
    "PROCTORQ_SUPPORT_URL": "https://support.example.test/",
    "PROCTORQ_EMAIL_FROM": "proctorq <noreply@proctorq.test>",
    "PROCTORQ_USER_OBFUSCATION_KEY": "a-test-key-for-the-user-ids-vendors-are-given",
    "PROCTORQ_PUBLIC_URL": "http://127.0.0.1:8000",
}

# Set on a developer's machine, these would send the tests' mail, credit calls or data to it.
# Set in the environment of every process a Stack starts (tests/support/processes.py).
STACK_MARK = "PROCTORQ_TEST_STACK_PROCESS"
UNSET = ("PROCTORQ_SMTP_URL", "PROCTORQ_CREDIT_WEBHOOK_URL", "PROCTORQ_DATABASE_URL")
