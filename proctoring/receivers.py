"""Delivering events to their receivers: at least once, in order per (receiver, attempt), each
receiver at its own pace (docs/behaviour.md, "Events for the LMS").

The event rows of one receiver and one attempt form a sequence, oldest id first; only its head
is ever sent. A batch takes the heads it is woken for and the rows behind them, and sends each
sequence in order: a row delivered, or failed for good, lets the next one go; a row to try
again holds its sequence, and the receiver, until its next try. Two short transactions, none
open while a receiver answers: the rows are leased for the length of the calls, then the
answers are recorded and the next heads woken.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from standardwebhooks.webhooks import Webhook

from config import EventReceiver
from proctoring import followups
from proctoring.clock import utcnow
from proctoring.events import webhook_id
from proctoring.http import RetryLater, judge_answer
from proctoring.models import Outbox, OutboxKind, OutboxState

log = logging.getLogger(__name__)

Key = tuple[str, int]  # a sequence: (receiver, attempt id)

# Rows of one sequence sent by one batch; the rest wait for the next.
RUN_LIMIT = 50
# How long a process leaves alone a receiver that let a call time out.
HANG_SECONDS = 5.0


class Send(Protocol):
    """Sends one event. Returns None when the receiver took it, else why it never will;
    raises RetryLater when it should be tried again."""

    def __call__(self, receiver: str, outbox_id: int, body: str) -> str | None: ...


@dataclass
class _Run:
    """The rows of one sequence this batch sends, in order."""

    rows: list[tuple[int, str]] = field(default_factory=list)  # (outbox id, body)
    done: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    later: tuple[str, float | None] | None = None


def deliver_events(
    uow: Callable[[], AbstractContextManager[Session]],
    outbox_ids: Sequence[int],
    send: Send,
    policy: followups.RetryPolicy | None = None,
    call_seconds: float = 10.0,
) -> followups.FollowUpResult:
    """Send the sequences these event rows belong to, each from its head, in order.
    ``call_seconds`` is the longest one call may take: the lease covers them all."""
    policy = policy or followups.RetryPolicy()
    result = followups.FollowUpResult()
    with uow() as session:
        runs = _lease(session, outbox_ids, call_seconds)
    if not runs:
        return result
    by_receiver: dict[str, list[_Run]] = defaultdict(list)
    for (receiver, _), run in runs.items():
        by_receiver[receiver].append(run)
    if len(by_receiver) == 1:
        _send_runs(send, *next(iter(by_receiver.items())))
    else:
        # A receiver that is slow holds its own thread, never another receiver's events.
        with ThreadPoolExecutor(max_workers=min(8, len(by_receiver))) as pool:
            list(pool.map(lambda item: _send_runs(send, *item), by_receiver.items()))
    return followups.record_answers(
        uow, lambda session, result: _record(session, runs, policy, result)
    )


def _lease(session: Session, outbox_ids: Sequence[int], call_seconds: float) -> dict[Key, _Run]:
    """Lock the sequences' pending rows; lease the runs whose head is ours and due."""
    given = followups.claim(session, OutboxKind.event, outbox_ids)
    wanted = {(row.receiver or "", row.attempt_id) for row in given}
    if not wanted:
        return {}
    in_sequences = _in_sequences(wanted)
    held = {
        row.id: row
        for row in session.scalars(
            select(Outbox)
            .where(*in_sequences)
            .order_by(Outbox.id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    }
    # Every pending id, held or not: a row another worker holds still comes first.
    order: dict[Key, list[int]] = defaultdict(list)
    for row_id, receiver, attempt in session.execute(
        select(Outbox.id, Outbox.receiver, Outbox.attempt_id)
        .where(*in_sequences)
        .order_by(Outbox.id)
    ):
        order[(receiver or "", attempt)].append(row_id)
    now = utcnow()
    runs: dict[Key, list[Outbox]] = {}
    waiting: list[int] = []  # until the lease runs out, or a finished head wakes them
    for sequence in sorted(wanted):
        ids = order.get(sequence, [])
        ours: list[Outbox] = []
        for row_id in ids[:RUN_LIMIT]:
            if row_id not in held:
                break
            ours.append(held[row_id])
        taken = {row.id for row in ours}
        behind = [i for i in ids if i in held and i not in taken]
        head = ours[0] if ours else None
        if head is not None and head.next_try_at is not None and head.next_try_at > now:
            # The head waits for its next try, or another worker is sending it: so does the
            # rest, and the head's own message brings them.
            followups.postpone_until(session, [r.id for r in ours[1:]] + behind, head.next_try_at)
        elif head is None:
            waiting += behind
        else:
            waiting += behind
            runs[sequence] = ours
    per_receiver: dict[str, int] = defaultdict(int)
    for (receiver, _), rows in runs.items():
        per_receiver[receiver] += len(rows)
    lease = now + dt.timedelta(seconds=call_seconds * (max(per_receiver.values(), default=0) + 1))
    followups.postpone_until(session, waiting, lease)
    for rows in runs.values():
        for row in rows:
            row.next_try_at = row.last_published_at = lease
    return {
        sequence: _Run(rows=[(row.id, row.payload or "") for row in rows])
        for sequence, rows in runs.items()
    }


def _in_sequences(sequences: Collection[Key]) -> tuple[ColumnElement[bool], ...]:
    """Pending event rows of these receivers and attempts (a superset of the sequences)."""
    return (
        Outbox.kind == OutboxKind.event,
        Outbox.state == OutboxState.pending,
        Outbox.receiver.in_({receiver for receiver, _ in sequences}),
        Outbox.attempt_id.in_({attempt for _, attempt in sequences}),
    )


def _send_runs(send: Send, receiver: str, runs: list[_Run]) -> None:
    """Send one receiver's runs; once it asks to be tried again, it is away for them all."""
    away: tuple[str, float | None] | None = None
    for run in runs:
        if away is not None:
            run.later = away
            continue
        for row_id, body in run.rows:
            try:
                answer = send(receiver, row_id, body)
            except RetryLater as exc:
                away = run.later = (str(exc), exc.after)
                break
            except Exception as exc:  # one event's surprise is its own, as a task's is
                log.exception("event %s to %s could not be sent", row_id, receiver)
                answer = f"could not be sent: {type(exc).__name__}"
            if answer is None:
                run.done.append(row_id)
            else:
                run.failed.append((row_id, answer))


def _record(
    session: Session,
    runs: dict[Key, _Run],
    policy: followups.RetryPolicy,
    result: followups.FollowUpResult,
) -> None:
    """Write the answers; hold a sequence behind a head to try again; wake the next heads."""
    done = [row_id for run in runs.values() for row_id in run.done]
    if done:
        session.execute(
            update(Outbox)
            .where(Outbox.id.in_(done), Outbox.state == OutboxState.pending)
            .values(state=OutboxState.done, done_at=utcnow(), detail=None)
        )
        result.done.extend(done)
    for run in runs.values():
        for row_id, reason in run.failed:
            followups.fail_outbox(session, [row_id], reason)
            result.failed.append(row_id)
        if run.later is None:
            continue
        finished = len(run.done) + len(run.failed)
        untried = [row_id for row_id, _ in run.rows[finished:]]
        reason, asked = run.later
        over, wait = followups.postpone(session, untried[:1], reason, policy, asked=asked)
        result.failed.extend(over)
        if not over and wait is not None:
            # The rows behind the head wait with it; the head's own message brings them.
            until = utcnow() + dt.timedelta(seconds=wait)
            followups.postpone_until(session, untried[1:], until)
            result.postponed(untried[:1], wait)
    _wake_heads(session, list(runs))


def _wake_heads(session: Session, sequences: list[Key]) -> None:
    """Wake each sequence's new head: a row that waited behind one now finished. A head with
    tries of its own waits for its next try instead."""
    if not sequences:
        return
    heads: dict[Key, tuple[int, int]] = {}
    for row_id, receiver, attempt, tries in session.execute(
        select(Outbox.id, Outbox.receiver, Outbox.attempt_id, Outbox.tries)
        .where(*_in_sequences(sequences))
        .order_by(Outbox.id)
    ):
        heads.setdefault((receiver or "", attempt), (row_id, tries))
    woken = sorted(
        row_id for key, (row_id, tries) in heads.items() if key in sequences and not tries
    )
    followups.release(session, OutboxKind.event, woken)


class EventSender:
    """Signs each event with its receiver's Standard Webhooks key and POSTs it.

    A receiver that said when to try again (Retry-After), or let a call time out, is left
    alone in this process until then, or for a few seconds: events recorded meanwhile wait
    their turn instead of each spending a call, or a whole timeout.
    """

    def __init__(
        self,
        receivers: Sequence[EventReceiver],
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._receivers = {r.name: (r.url, Webhook(r.secret.get_secret_value())) for r in receivers}
        self._client = client or httpx.Client(timeout=timeout)
        self._away: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, receiver: str, outbox_id: int, body: str) -> str | None:
        if receiver not in self._receivers:
            return f"receiver {receiver!r} is not configured in PROCTORQ_EVENT_WEBHOOKS"
        with self._lock:
            back = self._away.get(receiver, 0.0) - time.monotonic()
        if back > 0:
            raise RetryLater(f"receiver {receiver} asked to be tried again later", after=back)
        url, signer = self._receivers[receiver]
        message_id = webhook_id(outbox_id)
        now = dt.datetime.now(dt.UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(message_id, now, body),
        }
        try:
            response = self._client.post(url, content=body.encode(), headers=headers)
            return judge_answer(response, f"receiver {receiver}")
        except RetryLater as exc:
            if exc.after is not None:  # it said when: nothing sooner
                self._leave_alone(receiver, exc.after)
            raise
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.TimeoutException):  # it hangs: spare the next events
                self._leave_alone(receiver, HANG_SECONDS)
            raise RetryLater(f"receiver {receiver} unreachable: {type(exc).__name__}") from exc

    def _leave_alone(self, receiver: str, seconds: float) -> None:
        with self._lock:
            self._away[receiver] = time.monotonic() + min(seconds, 120.0)

    def close(self) -> None:
        self._client.close()
