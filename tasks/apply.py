"""Applying recorded transition requests, and recording the cascades they cause."""

from __future__ import annotations

from sqlalchemy.orm import Session

from config import get_settings
from proctoring import apply, cascade
from proctoring.ledger import INBOX, OUTBOX
from proctoring.models import Transition
from proctoring.outbox import FollowUpResult
from workers import routing
from workers.app import app
from workers.base import OneTransactionTask


@app.task(base=OneTransactionTask, name=routing.APPLY_TRANSITIONS, ledger=INBOX)
def apply_transitions(session: Session, transition_ids: list[int]) -> list[Transition]:
    return apply.apply_transitions(session, transition_ids, drain=get_settings().apply_batch_size)


@app.task(base=OneTransactionTask, name=routing.CASCADE_DECLINES, ledger=OUTBOX)
def cascade_declines(session: Session, outbox_ids: list[int]) -> FollowUpResult:
    return cascade.run_cascades(session, outbox_ids)
