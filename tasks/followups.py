"""Follow-ups of an applied transition: the credit requirement and the status e-mail."""

from __future__ import annotations

from config import get_settings
from proctoring import credit, emails
from proctoring.db import UnitOfWork
from proctoring.ledger import OUTBOX
from proctoring.outbox import FollowUpResult
from workers import routing
from workers.app import app
from workers.base import OwnTransactionsTask
from workers.resources import credit_webhook, email_backend, retry_policy


@app.task(base=OwnTransactionsTask, name=routing.UPDATE_CREDIT, ledger=OUTBOX)
def update_credit(uow: UnitOfWork, outbox_ids: list[int]) -> FollowUpResult:
    settings = get_settings()
    webhook = credit_webhook()
    return credit.settle_credit(
        uow,
        outbox_ids,
        webhook,
        retry_policy(),
        # Every call of the batch may take the whole timeout before the answers are recorded.
        lease_seconds=settings.credit_webhook_timeout_seconds * (len(outbox_ids) + 1),
    )


@app.task(base=OwnTransactionsTask, name=routing.SEND_STATUS_EMAIL, ledger=OUTBOX)
def send_status_email(uow: UnitOfWork, outbox_ids: list[int]) -> FollowUpResult:
    settings = get_settings()
    return emails.send_status_emails(
        uow,
        outbox_ids,
        email_backend(),
        sender=settings.email_from,
        support_url=settings.support_url,
        claim_seconds=settings.email_claim_seconds,
        policy=retry_policy(),
    )
