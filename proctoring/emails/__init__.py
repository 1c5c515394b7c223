"""Status e-mails: rendered from a template folder per kind (``render``), handed to a
transport (``transports``), and sent at most once per applied transition (``sending``)."""

from proctoring.emails.render import (
    EMAILS,
    Facts,
    Rendered,
    attempt_rejected,
    attempt_submitted,
    attempt_verified,
    build_message,
    render,
    templates_dir,
)
from proctoring.emails.sending import send_status_emails
from proctoring.emails.transports import (
    Backend,
    FileBackend,
    InsecureLogin,
    SMTPBackend,
    Unavailable,
    Undeliverable,
    envelope_address,
    open_backend,
    smtp_reason,
)

__all__ = [
    "EMAILS",
    "Backend",
    "Facts",
    "FileBackend",
    "InsecureLogin",
    "Rendered",
    "SMTPBackend",
    "Unavailable",
    "Undeliverable",
    "attempt_rejected",
    "attempt_submitted",
    "attempt_verified",
    "build_message",
    "envelope_address",
    "open_backend",
    "render",
    "send_status_emails",
    "smtp_reason",
    "templates_dir",
]
