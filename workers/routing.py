"""Where every task goes, and nothing else: task names, queues, routes, the wake-up map.

This module has no side effects and imports no task, so anything (the API, the command line,
a test, a benchmark) can know a task's name and queue without building the Celery app.

Task names are stable: messages outlive deploys, so renaming a function must not orphan work.
A test pins these strings; change one only with a migration plan for queued messages.
"""

from __future__ import annotations

from proctoring.db import WakeupKind

APPLY_TRANSITIONS = "proctorq.apply_transitions"
CASCADE_DECLINES = "proctorq.cascade_declines"
UPDATE_CREDIT = "proctorq.update_credit"
SEND_STATUS_EMAIL = "proctorq.send_status_email"
DELIVER_EVENTS = "proctorq.deliver_events"
CALL_VENDOR = "proctorq.call_vendor"
SWEEP_INBOX = "proctorq.sweep_inbox"
RELAY_OUTBOX = "proctorq.relay_outbox"
EXPIRE_OVERDUE_ATTEMPTS = "proctorq.expire_overdue_attempts"

QUEUES = ("transitions", "credit", "email", "events", "vendor", "maintenance")

ROUTES = {
    APPLY_TRANSITIONS: "transitions",
    CASCADE_DECLINES: "transitions",
    UPDATE_CREDIT: "credit",
    SEND_STATUS_EMAIL: "email",
    DELIVER_EVENTS: "events",
    CALL_VENDOR: "vendor",
    SWEEP_INBOX: "maintenance",
    RELAY_OUTBOX: "maintenance",
    EXPIRE_OVERDUE_ATTEMPTS: "maintenance",
}

# The periodic bookkeeping: it runs every few seconds whether or not there is work, so it sends
# no task events, and Flower's history shows the real work (see workers/app.py).
MAINTENANCE = (SWEEP_INBOX, RELAY_OUTBOX, EXPIRE_OVERDUE_ATTEMPTS)

# The modules that define the tasks, imported by the worker when the app is finalised.
TASK_MODULES = (
    "tasks.apply",
    "tasks.followups",
    "tasks.events",
    "tasks.vendors",
    "tasks.maintenance",
)

# What each kind of wake-up is sent as.
BY_WAKEUP: dict[WakeupKind, str] = {
    WakeupKind.apply: APPLY_TRANSITIONS,
    WakeupKind.cascade: CASCADE_DECLINES,
    WakeupKind.credit: UPDATE_CREDIT,
    WakeupKind.clear_credit: UPDATE_CREDIT,
    WakeupKind.email: SEND_STATUS_EMAIL,
    WakeupKind.event: DELIVER_EVENTS,
    WakeupKind.vendor: CALL_VENDOR,
}

# The longest a retry waits as a message on the broker (see workers/base.py); longer waits
# are left to the relay, which publishes a follow-up when its next try has come.
MAX_RETRY_DELAY_SECONDS = 120


def is_embedded(broker_url: str) -> bool:
    """The embedded broker: kombu's SQLAlchemy transport, with no fanout and no events."""
    return broker_url.startswith(("sqla+", "sqlalchemy+"))
