"""Calls to vendors speaking edx-proctoring's REST protocol, in order per attempt
(proctoring/vendor_calls.py)."""

from __future__ import annotations

from config import get_settings
from proctoring import vendor_calls
from proctoring.db import UnitOfWork
from proctoring.ledger import OUTBOX
from proctoring.outbox import FollowUpResult
from workers import routing
from workers.app import app
from workers.base import OwnTransactionsTask
from workers.resources import retry_policy, vendor_client


@app.task(base=OwnTransactionsTask, name=routing.CALL_VENDOR, ledger=OUTBOX)
def call_vendor(uow: UnitOfWork, outbox_ids: list[int]) -> FollowUpResult:
    return vendor_calls.call_vendors(
        uow,
        outbox_ids,
        vendor_client(),
        retry_policy(),
        call_seconds=get_settings().vendor_timeout_seconds,
    )
