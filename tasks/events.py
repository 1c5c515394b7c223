"""Events for the LMS: each receiver's events, in order per attempt (proctoring/receivers.py)."""

from __future__ import annotations

from config import get_settings
from proctoring import receivers
from proctoring.db import UnitOfWork
from proctoring.ledger import OUTBOX
from proctoring.outbox import FollowUpResult
from workers import routing
from workers.app import app
from workers.base import OwnTransactionsTask
from workers.resources import event_sender, retry_policy


@app.task(base=OwnTransactionsTask, name=routing.DELIVER_EVENTS, ledger=OUTBOX)
def deliver_events(uow: UnitOfWork, outbox_ids: list[int]) -> FollowUpResult:
    return receivers.deliver_events(
        uow,
        outbox_ids,
        event_sender(),
        retry_policy(),
        call_seconds=get_settings().event_webhook_timeout_seconds,
    )
