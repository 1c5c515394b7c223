"""A small reference model of SPEC §3–§5, written from the spec and nothing else.

It replays requests one at a time, in received order, and keeps only what can be compared with
the real system: statuses, history chains, follow-ups, credit and e-mails. The stateful test of
the domain and the fault suites both judge proctorq against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMPLETED = {
    "declined",
    "timed_out",
    "submitted",
    "second_review_required",
    "verified",
    "rejected",
    "error",
}
IN_PROGRESS = {"started", "ready_to_submit"}
PRE_START = {"created", "download_software_clicked", "ready_to_start"}
REVIEWED = {"second_review_required", "verified", "rejected"}
CREDIT = {"declined": "failed", "submitted": "submitted", "verified": "satisfied"}
CREDIT |= {"rejected": "failed", "error": "failed"}
CASCADES = {"declined", "rejected"}
EMAILS = {"submitted", "verified", "rejected"}
ALL = PRE_START | IN_PROGRESS | COMPLETED
MAY_SET = {
    "learner": {
        "download_software_clicked",
        "ready_to_start",
        "started",
        "ready_to_submit",
        "submitted",
        "declined",
        "timed_out",
        "error",
    },
    "staff": ALL,
    "vendor": {"ready_to_start", "second_review_required", "verified", "rejected", "error"},
    "system": {"timed_out"},
    "cascade": {"declined"},
}


@dataclass
class ModelExam:
    id: int
    course_id: str
    content_id: str
    provider: str | None
    is_active: bool = True
    is_proctored: bool = True
    is_practice_exam: bool = False


@dataclass
class ModelAttempt:
    exam_id: int
    user_id: int
    status: str = "created"
    taking_as_proctored: bool = True
    external_id: str | None = None
    is_sample: bool = False
    history: list[tuple[str, str]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # outcomes of held reviews, oldest first


@dataclass
class Provider:
    vocabulary: dict[str, str]
    passing: set[str]
    require_second_review: bool = True
    allow_timed_out_state: bool | None = None


@dataclass
class Model:
    providers: dict[str, Provider]
    exams: dict[int, ModelExam] = field(default_factory=dict)
    attempts: dict[tuple[int, int], ModelAttempt] = field(default_factory=dict)
    follow_ups: list[tuple[tuple[int, int], str, str]] = field(default_factory=list)
    credit: dict[tuple[int, str, str], str] = field(default_factory=dict)
    emails: int = 0
    outcomes: list[str] = field(default_factory=list)
    seen_keys: dict[tuple[str, str], tuple[tuple[int, int], str]] = field(default_factory=dict)
    seen_webhooks: set[tuple[str, str]] = field(default_factory=set)
    _cascades: list[tuple[int, int]] = field(default_factory=list)

    # --- what callers do ---------------------------------------------------------------------

    def add_exam(self, exam: ModelExam) -> None:
        self.exams[exam.id] = exam

    def add_attempt(
        self, exam_id: int, user_id: int, *, proctored: bool = True, external_id: str | None = None
    ) -> ModelAttempt:
        exam = self.exams[exam_id]
        attempt = ModelAttempt(
            exam_id,
            user_id,
            taking_as_proctored=proctored,
            external_id=external_id,
            is_sample=exam.is_practice_exam,
        )
        self.attempts[(exam_id, user_id)] = attempt
        return attempt

    def request(
        self, key: tuple[int, int], to: str, source: str, idempotency_key: str | None = None
    ) -> str | None:
        """A transition request; returns its final state, None if it was a repeat."""
        if idempotency_key is not None:
            seen = self.seen_keys.get((source, idempotency_key))
            if seen is not None:
                if seen != (key, to):
                    raise ValueError("conflict")
                return None
            self.seen_keys[(source, idempotency_key)] = (key, to)
        return self._apply(key, to, source)

    def review(
        self, key: tuple[int, int], provider: str, webhook_id: str, word: str, reviewed_by: bool
    ) -> str | None:
        """A vendor review; returns "applied", "held", "stored", or None for a repeat."""
        if (provider, webhook_id) in self.seen_webhooks:
            return None
        self.seen_webhooks.add((provider, webhook_id))
        outcome = self.outcome(provider, word, reviewed_by)
        attempt = self.attempts[key]
        if attempt.status == "declined" or not attempt.taking_as_proctored:
            return "stored"
        if attempt.status not in COMPLETED:
            attempt.held.append(outcome)
            return "held"
        self._apply(key, outcome, "vendor")
        return "applied"

    def outcome(self, provider: str, word: str, reviewed_by: bool) -> str:
        config = self.providers[provider]
        ours = config.vocabulary[word]
        if ours in config.passing:
            return "verified"
        if ours == "not_reviewed":
            return "error"
        if reviewed_by or not config.require_second_review:
            return "rejected"
        return "second_review_required"

    # --- SPEC §3 ------------------------------------------------------------------------------

    def _apply(self, key: tuple[int, int], to: str, source: str) -> str:
        attempt = self.attempts.get(key)
        if attempt is None:
            if source != "cascade":
                return self._end("rejected")
            attempt = self.add_attempt(key[0], key[1], proctored=False)
        current = attempt.status
        if to not in MAY_SET[source]:
            return self._end("rejected")
        if (
            source == "vendor"
            and to == "ready_to_start"
            and current not in PRE_START - {"ready_to_start"}
        ):
            return self._end("noop")
        if (
            source == "vendor"
            and to != "ready_to_start"
            and (current == "declined" or not attempt.taking_as_proctored)
        ):
            return self._end("noop")  # a review is stored, not applied, once declined
        if to == current:
            return self._end("noop")
        if source == "cascade" and current in COMPLETED:
            return self._end("noop")
        target = to
        if to == "timed_out":
            allowed = self.providers_allow(attempt.exam_id)
            if allowed is None:
                allowed = current == "created"
            if not allowed:
                target = "submitted"
        elif current in IN_PROGRESS and to in PRE_START:
            target = "submitted"
        if target == current:
            return self._end("noop")
        if current in COMPLETED and target not in COMPLETED:
            return self._end("rejected")
        if current in COMPLETED and target == "error" and source not in ("vendor", "staff"):
            return self._end("rejected")
        if current in REVIEWED and source == "learner":
            return self._end("rejected")

        attempt.status = target
        attempt.history.append((current, target))
        self._follow_ups(key, attempt, target, source)
        if target == "submitted":
            held, attempt.held = attempt.held, []
            for outcome in held:
                self._apply(key, outcome, "vendor")
        return self._end("applied")

    def providers_allow(self, exam_id: int) -> bool | None:
        provider = self.exams[exam_id].provider
        return None if provider is None else self.providers[provider].allow_timed_out_state

    def _follow_ups(self, key: tuple[int, int], attempt: ModelAttempt, result: str, source: str):
        exam = self.exams[attempt.exam_id]
        if result in CREDIT:
            self.follow_ups.append((key, "credit", result))
            self.credit[(attempt.user_id, exam.course_id, exam.content_id)] = CREDIT[result]
        if result in CASCADES and source != "cascade":
            if result == "declined":
                attempt.taking_as_proctored = False
                attempt.external_id = None
            self.follow_ups.append((key, "cascade", result))
            # The cascade runs after the request that caused it, exam by exam.
            cascade_to = [
                other.id
                for other in sorted(self.exams.values(), key=lambda e: e.id)
                if other.course_id == exam.course_id
                and other.id != exam.id
                and other.is_active
                and other.is_proctored
                and not other.is_practice_exam
            ]
            self._cascades.extend((other_id, attempt.user_id) for other_id in cascade_to)
        if result in EMAILS and attempt.taking_as_proctored and not attempt.is_sample:
            self.follow_ups.append((key, "email", result))
            self.emails += 1

    def run_cascades(self) -> None:
        """Apply the cascaded declines recorded so far (the follow-up tasks' work)."""
        while self._cascades:
            key = self._cascades.pop(0)
            self._apply(key, "declined", "cascade")

    def _end(self, state: str) -> str:
        self.outcomes.append(state)
        return state
