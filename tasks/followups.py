"""Follow-ups of an applied transition: the credit requirement and the status e-mail."""

from __future__ import annotations

from sqlalchemy.orm import Session

from config import get_settings
from proctoring import credit, emails, outbox
from proctoring.db import UnitOfWork
from proctoring.outbox import FollowUpResult
from tasks import names
from workers.app import app
from workers.base import ProctorqTask
from workers.resources import credit_webhook, email_backend


@app.task(
    base=ProctorqTask,
    name=names.UPDATE_CREDIT,
    count_delivery=staticmethod(outbox.count_delivery),
    give_up=staticmethod(outbox.fail_outbox),
)
def update_credit(session: Session, outbox_ids: list[int]) -> FollowUpResult:
    return credit.settle_credit(session, outbox_ids, credit_webhook())


@app.task(
    base=ProctorqTask,
    name=names.SEND_STATUS_EMAIL,
    count_delivery=staticmethod(outbox.count_delivery),
    give_up=staticmethod(outbox.fail_outbox),
    own_transactions=True,
)
def send_status_email(uow: UnitOfWork, outbox_ids: list[int]) -> FollowUpResult:
    settings = get_settings()
    return emails.send_status_emails(
        uow,
        outbox_ids,
        email_backend(),
        sender=settings.email_from,
        support_url=settings.support_url,
        claim_seconds=settings.email_claim_seconds,
    )
