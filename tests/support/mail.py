"""Status e-mails sent inside a test's own transaction, with the test settings' sender and
support address, and the e-mail follow-ups the domain wrote."""

from __future__ import annotations

import contextlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from proctoring import emails
from proctoring.models import Attempt, Outbox, OutboxKind

SENDER = "proctorq <noreply@proctorq.test>"
SUPPORT = "https://support.example.test/"


def email_rows(session: Session, attempt: Attempt) -> list[int]:
    return list(
        session.scalars(
            select(Outbox.id).where(
                Outbox.attempt_id == attempt.id, Outbox.kind == OutboxKind.email
            )
        )
    )


def send(session: Session, ids: list[int], backend: emails.Backend, **kw: float):
    """The three transactions of a real send, here all inside the test's own transaction."""
    return emails.send_status_emails(
        lambda: contextlib.nullcontext(session),
        ids,
        backend,
        sender=SENDER,
        support_url=SUPPORT,
        **kw,
    )
