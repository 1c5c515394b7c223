"""The outbox as a follow-up sees it: claim rows, finish them, try them again later, fail them.

Its books (delivery count, sweep, replay) are kept as the inbox's are: proctoring/ledger.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import cast

import sqlalchemy.exc
from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.orm import Session

from proctoring.clock import utcnow
from proctoring.db import wake
from proctoring.ledger import OUTBOX
from proctoring.models import Outbox, OutboxKind, OutboxState

log = logging.getLogger(__name__)

# How long the answers of calls already made are tried to be written while the database is
# away (record_answers): an outage of this long costs no call a second time.
ANSWER_PATIENCE_SECONDS = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """When a follow-up whose dependency is away is tried again.

    The first retry comes after about a second, each wait doubles up to two minutes, and a
    random part spreads the retries of many rows after an outage. The budget is time, not a
    count: an outage of hours delays a row, and only one longer than the budget fails it.
    """

    budget: dt.timedelta = dt.timedelta(hours=24)
    first_seconds: float = 1.0
    cap_seconds: float = 120.0
    # A dependency asking for a longer pause (Retry-After) is obeyed up to this.
    longest_asked_seconds: float = 3600.0

    def wait(self, tries: int, asked: float | None = None) -> float:
        """Seconds before the next try, after ``tries`` failed ones in a row."""
        ceiling = min(self.cap_seconds, self.first_seconds * 2 ** max(tries - 1, 0))
        wait = random.uniform(0.75 * ceiling, ceiling)  # noqa: S311 - not cryptographic
        if asked is not None:
            wait = max(wait, min(asked, self.longest_asked_seconds))
        return wait


@dataclass
class FollowUpResult:
    """What a follow-up batch came to. ``retry_ids`` wait for their next try, which is
    ``retry_after`` seconds away at the latest: one message then finds them all due."""

    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry_ids: list[int] = field(default_factory=list)
    retry_after: float | None = None

    def postponed(self, outbox_ids: Sequence[int], wait: float | None) -> None:
        self.retry_ids.extend(outbox_ids)
        if wait is not None:
            self.retry_after = max(self.retry_after or 0.0, wait)

    def add(self, other: FollowUpResult) -> None:
        self.done.extend(other.done)
        self.failed.extend(other.failed)
        self.postponed(other.retry_ids, other.retry_after)


def postpone(
    executor: Session | Connection,
    outbox_ids: Sequence[int],
    reason: str,
    policy: RetryPolicy,
    *,
    asked: float | None = None,
) -> tuple[list[int], float | None]:
    """Record a failed try of each row: its reason, and its next try by the policy; a row
    failing for longer than the budget ends `failed` instead.

    Returns the ids that ended failed, and the seconds until the latest next try. The rows'
    last publication is set to their next try: the message the caller sends for that moment
    is the one expected, and the relay publishes again only if it does not come.
    """
    if not outbox_ids:
        return [], None
    now = utcnow()
    rows = executor.execute(
        select(Outbox.id, Outbox.tries, Outbox.retrying_since).where(
            Outbox.id.in_(outbox_ids), Outbox.state == OutboxState.pending
        )
    ).all()
    over = [row_id for row_id, _, since in rows if since and now - since >= policy.budget]
    if over:
        hours = policy.budget.total_seconds() / 3600
        fail_outbox(executor, over, f"{reason}; still failing after {hours:g} h of tries")
    later = []
    longest: float | None = None
    for row_id, tries, since in rows:
        if row_id in over:
            continue
        wait = policy.wait(tries + 1, asked)
        longest = max(longest or 0.0, wait)
        at = now + dt.timedelta(seconds=wait)
        later.append(
            {
                "b_id": row_id,
                "b_tries": tries + 1,
                "b_since": since or now,
                "b_next": at,
                "b_detail": reason[:2000],
            }
        )
    if later:
        table = cast(Table, Outbox.__table__)
        executor.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                tries=bindparam("b_tries"),
                retrying_since=bindparam("b_since"),
                next_try_at=bindparam("b_next"),
                last_published_at=bindparam("b_next"),
                detail=bindparam("b_detail"),
                deliveries=0,
            ),
            later,
        )
    return over, longest


def postpone_until(
    executor: Session | Connection, outbox_ids: Sequence[int], when: dt.datetime
) -> None:
    """Leave rows alone until ``when`` without counting a failed try: another worker holds
    them (a claimed e-mail, a call under way), and the moment is when that hold runs out."""
    if outbox_ids:
        executor.execute(
            update(Outbox)
            .where(Outbox.id.in_(outbox_ids), Outbox.state == OutboxState.pending)
            .values(next_try_at=when, last_published_at=when, deliveries=0)
        )


def record_answers(
    uow: Callable[[], AbstractContextManager[Session]],
    write: Callable[[Session, FollowUpResult], None],
    patience_seconds: float = ANSWER_PATIENCE_SECONDS,
) -> FollowUpResult:
    """Write what calls already made were answered, in a short transaction of its own.

    The calls cannot be taken back, so a deadlock, a lost connection or a database away for
    a while is waited out here (for up to ``patience_seconds``), with a fresh result each
    try, rather than left to the task's retry: that would find the rows still leased, for as
    long as all the batch's calls could have taken, and send them again only after that.
    Only a failure that outlasts the patience propagates.
    """
    deadline = time.monotonic() + patience_seconds
    pause = 0.05
    while True:
        result = FollowUpResult()
        try:
            with uow() as session:
                write(session, result)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
            if time.monotonic() + pause > deadline:
                raise
            log.warning("writing the answers of calls made failed; trying again in %.1f s", pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
        else:
            return result


def release(session: Session, kind: OutboxKind, outbox_ids: Sequence[int]) -> None:
    """Due now, and woken after the commit: rows that waited behind one now finished (the
    next of an attempt's sequence of events or vendor calls)."""
    if outbox_ids:
        session.execute(
            update(Outbox)
            .where(Outbox.id.in_(outbox_ids))
            .values(next_try_at=None, last_published_at=utcnow(), deliveries=0)
        )
        wake(session, kind, list(outbox_ids))


def claim(session: Session, kind: OutboxKind, outbox_ids: Sequence[int]) -> list[Outbox]:
    """Lock the still-pending rows of this batch, oldest first.

    SKIP LOCKED: a row another worker holds is being handled there (a duplicate delivery of
    the same message, or the sweeper's re-publication); this batch leaves it alone.
    """
    if not outbox_ids:
        return []
    return list(
        session.scalars(
            select(Outbox)
            .where(
                Outbox.id.in_(sorted(set(outbox_ids))),
                Outbox.kind == kind,
                Outbox.state == OutboxState.pending,
            )
            .order_by(Outbox.id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )


def finish(row: Outbox, state: OutboxState, detail: str | None = None) -> None:
    row.state = state
    row.detail = detail[:2000] if detail else None
    row.done_at = utcnow()


def fail_outbox(executor: Session | Connection, outbox_ids: Sequence[int], detail: str) -> None:
    """End these follow-ups ``failed`` with the reason: no later try can help them."""
    OUTBOX.fail(executor, outbox_ids, detail)
