"""cascade: a decline in a course with 10, 100 and 1,000 exams. The SQL statements the fan-out
issues must not grow with the number of exams, and the time per declined exam must not
exceed the time of one ordinary transition (measured in the same run, the way a task runs it).

    .venv/bin/python -m bench.cascade
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from bench.common import environment, machine, record, report, seed
from proctoring import apply, cascade
from proctoring.db import UnitOfWork, make_session_factory
from proctoring.ledger import INBOX
from proctoring.models import Outbox, OutboxKind, Transition
from proctoring.statuses import Source, Status

BATCH = 100  # ids per apply message, as the publisher sends them


@contextmanager
def counting(engine) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def ordinary(uow: UnitOfWork, stack, samples: int = 200) -> float:  # type: ignore[no-untyped-def]
    """Seconds for one transition as a task applies it: count the delivery, then apply."""
    attempts, _ = seed(stack, samples, Status.started)
    ids = record(stack, attempts, Status.ready_to_submit)
    began = time.perf_counter()
    for transition_id in ids:
        with uow.autocommit() as connection:
            INBOX.count_delivery(connection, [transition_id], 8)
        with uow() as session:
            apply.apply_transitions(session, [transition_id])
    return (time.perf_counter() - began) / samples


def decline_in_course_of(uow: UnitOfWork, stack, exams: int) -> tuple[int, float, int]:  # type: ignore[no-untyped-def]
    """(statements of the fan-out, seconds per declined exam, exams declined)."""
    attempts, _ = seed(stack, 1, Status.started, exams=exams)
    (decline,) = record(stack, attempts, Status.declined)
    with uow() as session:
        apply.apply_transitions(session, [decline])
    with uow() as session:
        outbox_ids = session.scalars(
            select(Outbox.id).where(
                Outbox.transition_id == decline, Outbox.kind == OutboxKind.cascade
            )
        ).all()
    began = time.perf_counter()
    with counting(stack.engine) as statements, uow() as session:
        cascade.run_cascades(session, outbox_ids)
    fan_out = len(statements)
    with uow() as session:
        new = session.scalars(
            select(Transition.id).where(
                Transition.source == Source.cascade,
                Transition.idempotency_key.like(f"cascade:{decline}:%"),
            )
        ).all()
    for start in range(0, len(new), BATCH):  # what the apply tasks then do
        chunk = new[start : start + BATCH]
        with uow.autocommit() as connection:
            INBOX.count_delivery(connection, chunk, 8)
        with uow() as session:
            apply.apply_transitions(session, chunk)
    seconds = time.perf_counter() - began
    return fan_out, seconds / max(1, len(new)), len(new)


def main() -> None:
    rows = [("machine", machine())]
    with environment() as stack:
        uow = UnitOfWork(make_session_factory(stack.engine))
        one = ordinary(uow, stack)
        rows.append(("one ordinary transition (baseline)", f"{one * 1000:.2f} ms"))
        for exams in (10, 100, 1000):
            statements, per_exam, declined = decline_in_course_of(uow, stack, exams)
            rows.append((f"{exams} exams: fan-out statements", str(statements)))
            rows.append(
                (
                    f"{exams} exams: time per declined exam",
                    f"{per_exam * 1000:.2f} ms ({per_exam / one:.2f} of one transition; "
                    f"{declined} declined)",
                )
            )
    report("cascade: a decline fanning out to the course's other exams", rows)


if __name__ == "__main__":
    main()
