"""What a drain reads to take the oldest pending requests along (proctoring/draining.py)."""

from __future__ import annotations

from sqlalchemy import Connection, text, update
from sqlalchemy.orm import Session

from proctoring import draining
from proctoring.db import make_engine
from proctoring.models import Transition, TransitionState
from tests.support import factories as f

APPLIED = 1000
WAITING = 8


def pending_index_reads(connection: Connection) -> int:
    """Entries of ix_transitions_pending read so far, this connection's own reads included."""
    connection.execute(text("SELECT pg_stat_force_next_flush()"))
    connection.commit()  # idle now: the backend has sent its counts
    reads = connection.scalar(
        text(
            "SELECT idx_tup_read FROM pg_stat_user_indexes"
            " WHERE indexrelname = 'ix_transitions_pending'"
        )
    )
    connection.commit()
    return int(reads or 0)


def test_a_drain_reads_an_applied_requests_index_entry_once_not_every_time(
    postgres_url: str,
) -> None:
    """Applying a request leaves its entry in the pending index until vacuum, which on a large
    table comes seldom. A drain walks the index in order and marks the entries of rows no
    transaction can see any more, so the next drains skip them; read by a bitmap scan (the
    planner's choice when its statistics say few requests are pending), every drain would
    read every request applied since the last vacuum."""
    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        with Session(bind=connection) as session:
            attempt = f.attempt(session)
            for count in (APPLIED - WAITING, WAITING):
                session.execute(update(Transition).values(state=TransitionState.applied))
                for _ in range(count):
                    f.request(session, attempt, "started", "learner")
                session.commit()
            # Rows written into space vacuum freed no longer lie in the order received; and
            # statistics taken while a few were waiting, as autovacuum's would be.
            connection.execute(
                text("UPDATE transitions SET received_at = received_at - random() * interval '1 h'")
            )
            connection.execute(text("ANALYZE transitions"))
            session.execute(update(Transition).values(state=TransitionState.applied))
            session.commit()
        before = pending_index_reads(connection)
        for _ in range(10):
            with Session(bind=connection) as session:
                assert draining.take_along(session, 100, set()) == ([], None)
                # Only that read walks: the batch's other statements plan as they would.
                assert session.scalar(text("SHOW enable_bitmapscan")) == "on"
                session.commit()
        assert pending_index_reads(connection) - before < 2 * APPLIED  # a bitmap scan's: 10 times
    engine.dispose()
