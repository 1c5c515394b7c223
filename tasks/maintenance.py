"""Periodic work: publish what is stuck, and time out attempts whose time has run out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from config import get_settings
from proctoring import outbox, timeouts
from tasks import names
from workers.app import app
from workers.base import ProctorqTask


def _older_than() -> dt.timedelta:
    return dt.timedelta(seconds=get_settings().sweep_after_seconds)


@app.task(base=ProctorqTask, name=names.SWEEP_INBOX)
def sweep_inbox(session: Session) -> int:
    return outbox.sweep_inbox(session, _older_than())


@app.task(base=ProctorqTask, name=names.RELAY_OUTBOX)
def relay_outbox(session: Session) -> int:
    return outbox.relay_outbox(session, _older_than())


@app.task(base=ProctorqTask, name=names.EXPIRE_OVERDUE_ATTEMPTS)
def expire_overdue_attempts(session: Session) -> list[int]:
    return timeouts.expire_overdue_attempts(session)
