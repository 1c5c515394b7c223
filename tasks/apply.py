"""Applying recorded transition requests, and recording the cascades they cause."""

from __future__ import annotations

from sqlalchemy.orm import Session

from config import get_settings
from proctoring import cascade, outbox, transitions
from proctoring.models import Transition
from proctoring.outbox import FollowUpResult
from tasks import names
from workers.app import app
from workers.base import ProctorqTask


@app.task(
    base=ProctorqTask,
    name=names.APPLY_TRANSITIONS,
    count_delivery=staticmethod(transitions.count_delivery),
    give_up=staticmethod(transitions.fail_transitions),
)
def apply_transitions(session: Session, transition_ids: list[int]) -> list[Transition]:
    return transitions.apply_transitions(
        session, transition_ids, drain=get_settings().apply_batch_size
    )


@app.task(
    base=ProctorqTask,
    name=names.CASCADE_DECLINES,
    count_delivery=staticmethod(outbox.count_delivery),
    give_up=staticmethod(outbox.fail_outbox),
)
def cascade_declines(session: Session, outbox_ids: list[int]) -> FollowUpResult:
    return cascade.run_cascades(session, outbox_ids)
