"""Random requests to the domain and to the reference model; both must agree after every step.

All sources, repeated keys and webhook ids, reviews before submits, declines cascading through a
course of several exams (practice, inactive and timed ones among them), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from proctoring import attempts, cascade, credit, reviews, transitions
from proctoring.db import make_session_factory
from proctoring.errors import Conflict
from proctoring.models import (
    Attempt,
    AttemptHistory,
    CreditRequirement,
    Outbox,
    OutboxKind,
    OutboxState,
    Transition,
    TransitionState,
)
from proctoring.statuses import Status
from tests import factories as f
from tests.conftest import CLEAN_WORDS, STATEFUL_STEPS
from tests.model import Model, ModelExam, Provider

STATUSES = [s.value for s in Status]
WORDS = {
    "acme": ["passed", "violation", "suspicious", "not_reviewed"],
    "cleanview": list(CLEAN_WORDS),
    "strict": ["passed", "violation", "suspicious", "not_reviewed"],
}
MODEL_PROVIDERS = {
    "acme": Provider({w: w for w in WORDS["acme"]}, {"passed"}),
    "cleanview": Provider(dict(CLEAN_WORDS), {"passed"}, allow_timed_out_state=True),
    "strict": Provider(
        {w: w for w in WORDS["strict"]},
        {"passed"},
        require_second_review=False,
        allow_timed_out_state=False,
    ),
}
LEARNERS = 2
_courses = itertools.count(1)


class DomainAgainstModel(RuleBasedStateMachine):
    engine: Engine

    def __init__(self) -> None:
        super().__init__()
        self.connection = self.engine.connect()
        self.transaction = self.connection.begin()
        self.session: Session = make_session_factory(self.engine)(
            bind=self.connection, join_transaction_mode="create_savepoint"
        )
        self.model = Model(providers=MODEL_PROVIDERS)
        self.keys: list[tuple[str, str, tuple[int, int], str]] = []
        self.webhooks: list[tuple[str, str, tuple[int, int]]] = []
        self.counter = itertools.count(1)
        self.exam_ids: list[int] = []
        self.user_ids: list[int] = []

    def teardown(self) -> None:
        self.session.close()
        self.transaction.rollback()
        self.connection.close()

    # --- setting the scene ---------------------------------------------------------------------

    @initialize(
        providers=st.lists(
            st.sampled_from(["acme", "cleanview", "strict", None]), min_size=2, max_size=4
        ),
        flags=st.lists(st.booleans(), min_size=LEARNERS * 10, max_size=LEARNERS * 10),
    )
    def a_course(self, providers: list[str | None], flags: list[bool]) -> None:
        course = f"course-v1:proctorq+Stateful{next(_courses)}+2026"
        real = [f.exam(self.session, course, provider=p) for p in providers]
        others = [
            f.exam(self.session, course, is_practice_exam=True),
            f.exam(self.session, course, is_active=False),
            f.exam(self.session, course, is_proctored=False),
        ]
        for exam in real + others:
            self.model.add_exam(
                ModelExam(
                    exam.id,
                    course,
                    exam.content_id,
                    exam.provider,
                    exam.is_active,
                    exam.is_proctored,
                    exam.is_practice_exam,
                )
            )
        self.exam_ids = [e.id for e in real + others[:1]]
        self.user_ids = [f.user(self.session).user_id for _ in range(LEARNERS)]
        flag = iter(flags)
        for user_id in self.user_ids:
            for exam in real + others[:1]:
                if exam is real[-1] and next(flag):
                    continue  # the learner never started this one: a cascade will make it
                proctor = next(flag)
                external = f"ext-{next(self.counter)}"
                attempts.create_attempt(
                    self.session,
                    exam_id=exam.id,
                    user_id=user_id,
                    taking_as_proctored=proctor,
                    external_id=external,
                )
                self.model.add_attempt(exam.id, user_id, proctored=proctor, external_id=external)

    # --- what the domain and the model are sent ---------------------------------------------

    def _live(self, key: tuple[int, int]) -> Attempt | None:
        return attempts.live_attempt(self.session, *key)

    @rule(
        data=st.data(),
        to=st.sampled_from(STATUSES),
        source=st.sampled_from(["learner", "staff", "system", "learner", "staff"]),
    )
    def a_request(self, data: st.DataObject, to: str, source: str) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.attempts)))
        attempt = self._live(key)
        assert attempt is not None
        idempotency_key = f"k{next(self.counter)}"
        self.keys.append((source, idempotency_key, key, to))
        f.request(self.session, attempt, to, source, key=idempotency_key)
        self.model.request(key, to, source, idempotency_key)
        self.drain()

    @rule(data=st.data(), size=st.integers(2, 5))
    def a_burst_for_one_attempt(self, data: st.DataObject, size: int) -> None:
        """Several requests recorded before any is applied: applied in received order."""
        key = data.draw(st.sampled_from(sorted(self.model.attempts)))
        attempt = self._live(key)
        assert attempt is not None
        for _ in range(size):
            to = data.draw(st.sampled_from(STATUSES))
            source = data.draw(st.sampled_from(["learner", "staff"]))
            idempotency_key = f"k{next(self.counter)}"
            self.keys.append((source, idempotency_key, key, to))
            f.request(self.session, attempt, to, source, key=idempotency_key)
        for source, idempotency_key, k, to in self.keys[-size:]:
            self.model.request(k, to, source, idempotency_key)
        self.drain()

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data(), conflicting=st.booleans())
    def a_repeated_key(self, data: st.DataObject, conflicting: bool) -> None:
        source, idempotency_key, key, to = data.draw(st.sampled_from(self.keys))
        attempt = self._live(key)
        if attempt is None:
            return
        other = "error" if to != "error" else "declined"
        ask = other if conflicting else to
        if conflicting:
            with pytest.raises(Conflict):
                f.request(self.session, attempt, ask, source, key=idempotency_key)
            with pytest.raises(ValueError, match="conflict"):
                self.model.request(key, ask, source, idempotency_key)
        else:
            f.request(self.session, attempt, ask, source, key=idempotency_key)
            assert self.model.request(key, ask, source, idempotency_key) is None
        self.drain()

    @rule(data=st.data(), reviewed_by=st.booleans())
    def a_review(self, data: st.DataObject, reviewed_by: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.attempts)))
        provider = self.model.exams[key[0]].provider
        if provider is None or key[0] not in self.exam_ids:
            return
        attempt = self._live(key)
        assert attempt is not None
        word = data.draw(st.sampled_from(WORDS[provider]))
        webhook_id = f"msg_{next(self.counter)}"
        self.webhooks.append((provider, webhook_id, key))
        receipt = reviews.record_review(
            self.session,
            provider=provider,
            webhook_id=webhook_id,
            status=word,
            attempt_code=attempt.attempt_code,
            reviewed_by="Jo" if reviewed_by else None,
        )
        expected = self.model.review(key, provider, webhook_id, word, reviewed_by)
        assert receipt.review.state.value == expected
        self.drain()

    @precondition(lambda self: bool(self.webhooks))
    @rule(data=st.data())
    def a_repeated_webhook(self, data: st.DataObject) -> None:
        provider, webhook_id, key = data.draw(st.sampled_from(self.webhooks))
        attempt = attempts.live_attempt(self.session, *key)
        assert attempt is not None
        word = WORDS[provider][0]
        receipt = reviews.record_review(
            self.session,
            provider=provider,
            webhook_id=webhook_id,
            status=word,
            attempt_code=attempt.attempt_code,
        )
        assert not receipt.new
        assert self.model.review(key, provider, webhook_id, word, False) is None
        self.drain()

    @rule(data=st.data())
    def a_vendor_ready(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.attempts)))
        provider = self.model.exams[key[0]].provider
        external = self.model.attempts[key].external_id
        if provider is None or external is None:
            return
        webhook_id = f"ready_{next(self.counter)}"
        reviews.record_vendor_ready(
            self.session, provider=provider, external_id=external, webhook_id=webhook_id
        )
        self.model.request(key, "ready_to_start", "vendor", f"{provider}:{webhook_id}")
        self.drain()

    # --- the workers' part, synchronously -----------------------------------------------------

    def drain(self) -> None:
        """Apply everything pending and run the cascades, as the pipeline would."""
        s = self.session
        while True:
            pending = s.scalars(
                select(Transition.id).where(Transition.state == TransitionState.pending)
            ).all()
            if pending:
                transitions.apply_transitions(s, pending)
                s.flush()
                continue
            rows = s.scalars(
                select(Outbox.id)
                .where(Outbox.kind == OutboxKind.cascade, Outbox.state == OutboxState.pending)
                .order_by(Outbox.id)
            ).all()
            if not rows:
                break
            cascade.run_cascades(s, rows)
            s.flush()
        self.model.run_cascades()
        credit_rows = s.scalars(
            select(Outbox.id).where(
                Outbox.kind == OutboxKind.credit, Outbox.state == OutboxState.pending
            )
        ).all()
        credit.settle_credit(f.same_session(s), credit_rows, None)
        s.flush()
        s.expire_all()

    # --- agreement ----------------------------------------------------------------------------

    steps = 0  # across every example of a run, to show how much was tried

    @invariant()
    def statuses_and_history_agree(self) -> None:
        type(self).steps += 1
        if not self.exam_ids:
            return
        live = self.session.scalars(
            select(Attempt).where(Attempt.exam_id.in_(list(self.model.exams)))
        ).all()
        assert {(a.exam_id, a.user_id) for a in live} == set(self.model.attempts)
        for attempt in live:
            expected = self.model.attempts[(attempt.exam_id, attempt.user_id)]
            assert attempt.status.value == expected.status
            assert attempt.taking_as_proctored == expected.taking_as_proctored
            chain = self.session.execute(
                select(AttemptHistory.from_status, AttemptHistory.to_status)
                .where(AttemptHistory.attempt_id == attempt.id)
                .order_by(AttemptHistory.id)
            ).all()
            assert [(a.value, b.value) for a, b in chain] == expected.history

    @invariant()
    def follow_ups_credit_and_outcomes_agree(self) -> None:
        if not self.exam_ids:
            return
        rows = self.session.execute(
            select(Attempt.exam_id, Attempt.user_id, Outbox.kind, Transition.result_status)
            .join(Outbox, Outbox.attempt_id == Attempt.id)
            .join(Transition, Transition.id == Outbox.transition_id)
            .where(Attempt.exam_id.in_(list(self.model.exams)))
        ).all()
        got = Counter(((e, u), k.value, r.value) for e, u, k, r in rows)
        expected = Counter(self.model.follow_ups)
        assert got == expected, (got - expected, expected - got)
        emails = sum(1 for _, kind, _ in self.model.follow_ups if kind == "email")
        assert emails == self.model.emails
        credit_rows = self.session.scalars(
            select(CreditRequirement).where(CreditRequirement.user_id.in_(self.user_ids))
        ).all()
        assert {
            (c.user_id, c.course_id, c.name): c.status.value for c in credit_rows
        } == self.model.credit, credit_rows
        states = Counter(
            s.value
            for s in self.session.scalars(
                select(Transition.state).where(Transition.user_id.in_(self.user_ids))
            )
        )
        assert states == Counter(self.model.outcomes), (states, Counter(self.model.outcomes))
        assert (
            self.session.scalar(
                select(func.count())
                .select_from(Transition)
                .where(Transition.state == TransitionState.pending)
            )
            == 0
        )


@pytest.mark.parametrize("steps", [25])
def test_the_domain_agrees_with_the_model(engine: Engine, steps: int) -> None:
    machine = type("Machine", (DomainAgainstModel,), {"engine": engine, "steps": 0})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(os.environ.get("PROCTORQ_STATEFUL_EXAMPLES", "30")),
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=False,
        ),
    )
    STATEFUL_STEPS[engine.dialect.name] = machine.steps
    assert machine.steps >= 200
