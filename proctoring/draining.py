"""What a batch takes along besides the attempts its message names: the oldest pending
requests' attempts that no other transaction holds, and which request to wake for those it
leaves out (proctoring/apply.py, `apply_transitions`)."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from proctoring.attempts import lock_attempts
from proctoring.models import Attempt, Transition, TransitionState


def take_along(session: Session, limit: int, exclude: set[int]) -> tuple[list[Attempt], int | None]:
    """Up to ``limit`` attempts of the oldest pending requests but ``exclude``'s, locked with
    SKIP LOCKED; and the request to wake after the commit: the first one left out that no
    applier holds, or the first beyond ``limit``."""
    oldest = _oldest_pending(session, limit + 1, exclude)
    wanted = {attempt for _, attempt in oldest[:limit]}
    drained = lock_attempts(session, sorted(wanted), skip_locked=True)
    skipped = wanted - {a.id for a in drained}
    covered = {a.id for a in drained} | (skipped - _held_only_by_others(session, skipped))
    return drained, _first_left_out(oldest, limit, covered)


def _oldest_pending(session: Session, limit: int, exclude: set[int]) -> list[tuple[int, int]]:
    """The oldest ``limit`` pending requests but ``exclude``'s: (request id, attempt id).

    On PostgreSQL they are read by walking ``ix_transitions_pending`` in order, never by a
    bitmap scan. Applying a request leaves its entry in that partial index until vacuum. A
    walk marks an entry dead once no transaction can see its row, and later walks skip it; a
    bitmap scan (what the planner picks when its statistics say few requests are pending)
    reads every entry every time, and so read, per batch, every request applied since the
    table's last vacuum (docs/DECISIONS.md, "Pipeline").
    """
    query = select(Transition.id, Transition.attempt_id).where(
        Transition.state == TransitionState.pending, Transition.attempt_id.is_not(None)
    )
    if exclude:
        query = query.where(Transition.attempt_id.not_in(exclude))
    walk = session.get_bind().dialect.name == "postgresql"
    if walk:
        session.execute(text("SET LOCAL enable_bitmapscan = off"))
    rows = session.execute(query.order_by(Transition.received_at).limit(limit)).all()
    if walk:
        session.execute(text("SET LOCAL enable_bitmapscan TO DEFAULT"))
    return [(transition_id, attempt_id) for transition_id, attempt_id in rows if attempt_id]


def _held_only_by_others(session: Session, attempt_ids: set[int]) -> set[int]:
    """Of attempts a drain skipped, those no applier holds: FOR NO KEY UPDATE does not
    conflict with the KEY SHARE lock of a transaction inserting a row that names the attempt
    (an e-mail's claim, an event), and does conflict with an applier's FOR UPDATE."""
    if not attempt_ids or session.get_bind().dialect.name != "postgresql":
        return set()
    return set(
        session.scalars(
            select(Attempt.id)
            .where(Attempt.id.in_(sorted(attempt_ids)))
            .with_for_update(skip_locked=True, key_share=True)
        )
    )


def _first_left_out(oldest: list[tuple[int, int]], drain: int, covered: set[int]) -> int | None:
    """The first of these requests no applier takes up (its attempt is not in ``covered``:
    this batch's, or held by another applier), or, when more were waiting than ``drain``, the
    one after them."""
    for transition_id, attempt_id in oldest[:drain]:
        if attempt_id not in covered:
            return transition_id
    return oldest[drain][0] if len(oldest) > drain else None
