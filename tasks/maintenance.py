"""Periodic work: publish what is stuck, and time out attempts whose time has run out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from config import get_settings
from proctoring import timeouts
from proctoring.ledger import INBOX, OUTBOX
from tasks import names
from workers.app import app
from workers.base import OneTransactionTask


def _older_than() -> dt.timedelta:
    return dt.timedelta(seconds=get_settings().sweep_after_seconds)


@app.task(base=OneTransactionTask, name=names.SWEEP_INBOX)
def sweep_inbox(session: Session) -> int:
    return INBOX.sweep(session, _older_than())


@app.task(base=OneTransactionTask, name=names.RELAY_OUTBOX)
def relay_outbox(session: Session) -> int:
    return OUTBOX.sweep(session, _older_than())


@app.task(base=OneTransactionTask, name=names.EXPIRE_OVERDUE_ATTEMPTS)
def expire_overdue_attempts(session: Session) -> list[int]:
    return timeouts.expire_overdue_attempts(session)
