"""Periodic work: publish what is stuck, and time out attempts whose time has run out.

These run every few seconds whether or not there is work, so they send no task events
(`send_events=False`): Flower's history shows the work an operator looks for, not ~40,000
ticks a day.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from config import get_settings
from proctoring import timeouts
from proctoring.ledger import INBOX, OUTBOX
from workers import routing
from workers.app import app
from workers.base import OneTransactionTask


def _older_than() -> dt.timedelta:
    return dt.timedelta(seconds=get_settings().sweep_after_seconds)


@app.task(base=OneTransactionTask, name=routing.SWEEP_INBOX, send_events=False)
def sweep_inbox(session: Session) -> int:
    return INBOX.sweep(session, _older_than())


@app.task(base=OneTransactionTask, name=routing.RELAY_OUTBOX, send_events=False)
def relay_outbox(session: Session) -> int:
    return OUTBOX.sweep(session, _older_than())


@app.task(base=OneTransactionTask, name=routing.EXPIRE_OVERDUE_ATTEMPTS, send_events=False)
def expire_overdue_attempts(session: Session) -> list[int]:
    return timeouts.expire_overdue_attempts(session)
