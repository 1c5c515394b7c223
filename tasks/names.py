"""Stable task names. Messages outlive deploys: renaming a function must not orphan work.

A test pins these strings; change one only with a migration plan for queued messages.
"""

from __future__ import annotations

from proctoring.db import WakeupKind

APPLY_TRANSITIONS = "proctorq.apply_transitions"
CASCADE_DECLINES = "proctorq.cascade_declines"
UPDATE_CREDIT = "proctorq.update_credit"
SEND_STATUS_EMAIL = "proctorq.send_status_email"
DELIVER_EVENTS = "proctorq.deliver_events"
SWEEP_INBOX = "proctorq.sweep_inbox"
RELAY_OUTBOX = "proctorq.relay_outbox"
EXPIRE_OVERDUE_ATTEMPTS = "proctorq.expire_overdue_attempts"

# What each kind of wake-up is sent as.
BY_WAKEUP: dict[WakeupKind, str] = {
    WakeupKind.apply: APPLY_TRANSITIONS,
    WakeupKind.cascade: CASCADE_DECLINES,
    WakeupKind.credit: UPDATE_CREDIT,
    WakeupKind.clear_credit: UPDATE_CREDIT,
    WakeupKind.email: SEND_STATUS_EMAIL,
    WakeupKind.event: DELIVER_EVENTS,
}
