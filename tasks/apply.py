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


# No worker task events (received, started, succeeded): at hundreds of messages a second, most
# of them finding their requests already applied by a batch before, publishing those events
# took a third of the worker's dispatching process and held every message up behind them
# (docs/PERFORMANCE.md). Flower still lists each message as sent, with its queue and ids; a
# request's outcome is its own state (GET /v1/transitions/{id}, proctorq failed, /metrics).
@app.task(
    base=OneTransactionTask,
    name=routing.APPLY_TRANSITIONS,
    ledger=INBOX,
    drains=True,
    send_events=False,
)
def apply_transitions(session: Session, transition_ids: list[int]) -> list[Transition]:
    return apply.apply_transitions(session, transition_ids, drain=get_settings().apply_batch_size)


@app.task(base=OneTransactionTask, name=routing.CASCADE_DECLINES, ledger=OUTBOX)
def cascade_declines(session: Session, outbox_ids: list[int]) -> FollowUpResult:
    return cascade.run_cascades(session, outbox_ids)
