"""The base task as a worker runs it: through its ``__call__``, never eagerly, on a real
PostgreSQL database; and the task names, which messages outlive deploys with."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy.exc
from celery import Task
from sqlalchemy import select

import proctoring.apply
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.ledger import INBOX, OUTBOX, Ledger
from proctoring.models import Transition, TransitionState
from tests.support import factories as f
from workers import base
from workers.app import app
from workers.base import OneTransactionTask, OwnTransactionsTask

# Every task, pinned by its name: what its ids name, and how it meets the database.
TASKS: dict[str, tuple[Ledger | None, type[Task]]] = {
    "proctorq.apply_transitions": (INBOX, OneTransactionTask),
    "proctorq.cascade_declines": (OUTBOX, OneTransactionTask),
    "proctorq.update_credit": (OUTBOX, OwnTransactionsTask),
    "proctorq.send_status_email": (OUTBOX, OwnTransactionsTask),
    "proctorq.deliver_events": (OUTBOX, OwnTransactionsTask),
    "proctorq.call_vendor": (OUTBOX, OwnTransactionsTask),
    "proctorq.sweep_inbox": (None, OneTransactionTask),
    "proctorq.relay_outbox": (None, OneTransactionTask),
    "proctorq.expire_overdue_attempts": (None, OneTransactionTask),
}


def test_every_task_keeps_its_name() -> None:
    app.loader.import_default_modules()  # the task modules the app lists
    assert {name for name in app.tasks if name.startswith("proctorq.")} == set(TASKS)
    for name, (ledger, kind) in TASKS.items():
        task = app.tasks[name]
        assert (task.ledger, isinstance(task, kind)) == (ledger, True), name


def test_a_message_carries_the_ids_and_nothing_else() -> None:
    """Checked when it is sent, before the broker is asked: the function's first parameter is
    the session or unit of work the base task hands it, never part of a message."""
    app.loader.import_default_modules()
    with pytest.raises(TypeError):
        app.tasks["proctorq.apply_transitions"].apply_async(args=[])
    with pytest.raises(TypeError):
        app.tasks["proctorq.send_status_email"].apply_async(args=[[1], [2]])
    with pytest.raises(TypeError):
        app.tasks["proctorq.sweep_inbox"].apply_async(args=[[1]])


@pytest.fixture
def uow(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[UnitOfWork]:
    """The worker's unit of work, on a database of this test's own; nothing is published."""
    engine = make_engine(postgres_url)
    unit = UnitOfWork(make_session_factory(engine))
    monkeypatch.setattr(base, "unit_of_work", lambda: unit)
    yield unit
    engine.dispose()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The messages the apply task sends itself, kept here instead of on a broker."""
    app.loader.import_default_modules()
    messages: list[Any] = []
    task = app.tasks["proctorq.apply_transitions"]
    monkeypatch.setattr(task, "apply_async", lambda args=None, **_: messages.append(args))
    return messages


def three_requests(uow: UnitOfWork) -> list[int]:
    with uow() as session:
        attempts = [f.attempt(session) for _ in range(3)]
        return [f.request(session, attempt, "started", "learner").id for attempt in attempts]


def requests(uow: UnitOfWork, ids: list[int]) -> set[tuple[TransitionState, str | None, int]]:
    with uow() as session:
        rows = session.scalars(select(Transition).where(Transition.id.in_(ids))).all()
        return {(row.state, row.detail, row.deliveries) for row in rows}


def test_an_error_on_several_ids_sends_each_alone_then_gives_each_up(
    uow: UnitOfWork, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = three_requests(uow)

    def broken(*_: object, **__: object) -> None:
        raise ValueError("a request the rules cannot read")

    monkeypatch.setattr(proctoring.apply, "apply_transitions", broken)
    task = app.tasks["proctorq.apply_transitions"]

    with pytest.raises(ValueError, match="cannot read"):
        task(ids)
    # One of them may be the culprit: each goes again alone, none is failed yet.
    assert sent == [[[one]] for one in ids]
    assert requests(uow, ids) == {(TransitionState.pending, None, 1)}

    for args in sent:
        with pytest.raises(ValueError, match="cannot read"):
            task(*args)
    assert len(sent) == len(ids)  # alone, an id is given up, not sent again
    assert requests(uow, ids) == {
        (TransitionState.failed, "ValueError: a request the rules cannot read", 2)
    }


def test_a_transient_error_fails_nothing(
    uow: UnitOfWork, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = three_requests(uow)

    def away(*_: object, **__: object) -> None:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("server closed"))

    monkeypatch.setattr(proctoring.apply, "apply_transitions", away)
    # Called directly, Celery's retry raises the error instead of sending a message.
    with pytest.raises(sqlalchemy.exc.OperationalError):
        app.tasks["proctorq.apply_transitions"](ids)
    assert sent == []
    assert requests(uow, ids) == {(TransitionState.pending, None, 1)}


def test_a_message_whose_requests_are_done_applies_what_waits(uow: UnitOfWork) -> None:
    """Under a steady stream most messages name requests a batch before has applied. Each
    still takes up what is waiting, instead of leaving it to the message that names it, which
    may be far behind in the queue (docs/PERFORMANCE.md, "Latency")."""
    task = app.tasks["proctorq.apply_transitions"]
    done = three_requests(uow)
    task(done[:1])  # applies all three: a batch drains what waits
    assert {state for state, _, _ in requests(uow, done)} == {TransitionState.applied}
    waiting = three_requests(uow)
    task(done[:1])  # a late message for a request already applied
    assert {state for state, _, _ in requests(uow, waiting)} == {TransitionState.applied}
    assert {deliveries for _, _, deliveries in requests(uow, waiting)} == {0}  # not theirs
