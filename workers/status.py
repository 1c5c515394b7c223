"""The backlog as operators see it: queues on the broker, requests and follow-ups in the store."""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import Celery

from proctoring import operations
from proctoring.db import UnitOfWork
from workers.queues import queue_depths
from workers.routing import is_embedded


def status_report(uow: UnitOfWork, app: Celery, broker_url: str) -> dict[str, Any]:
    """Everything `proctorq status` and the metrics show, as plain data."""
    with uow() as session:
        backlog = operations.backlog(session)
    report: dict[str, Any] = {
        "broker": "embedded" if is_embedded(broker_url) else "external",
        **dataclasses.asdict(backlog),
    }
    try:
        report["queues"] = queue_depths(app)
    except Exception as exc:  # the broker being down is exactly what must be said
        report["queues"] = None
        report["broker_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return report
