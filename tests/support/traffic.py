"""A stream of realistic requests through the HTTP API, and its replay through the model.

Each learner follows one story: a sequence of requests sent one after the other (each after
the previous was accepted), so the order they are received in is the order they were sent
in, whatever the number of client threads. Stories of different learners run at once. The
stories never race with themselves: a review comes last or before the submit, cascades only
reach the story's own learner. So the final state the model computes is the only right one.

Requests that meet a fault (503, a dropped connection) are sent again with the same
Idempotency-Key or webhook id, as an LMS or a vendor would.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.model import Model, ModelExam, Provider
from tests.support.tokens import bearer, signed

ACME = Provider({w: w for w in ("passed", "violation", "suspicious", "not_reviewed")}, {"passed"})

_ids = itertools.count(1)


@dataclass(frozen=True)
class Step:
    kind: str  # "move", "review", "ready"
    to: str = ""  # target status, or the vendor's word for a review
    source: str = "learner"  # learner, staff, relay (staff token acting for the learner)
    key: str = ""  # Idempotency-Key or webhook id
    reviewed_by: bool = False
    exam_index: int = 0


@dataclass
class Story:
    learner: int
    course: int
    steps: list[Step]
    repeats: set[int] = field(default_factory=set)  # indexes of steps sent twice


def make_stories(rng: random.Random, learners: Sequence[int], courses: int) -> list[Story]:
    """A mixed workload: every source, repeats, held reviews, cascades."""

    def key() -> str:
        return f"k{next(_ids)}-{uuid.uuid4().hex[:6]}"

    def move(to: str, source: str = "learner") -> Step:
        return Step("move", to, source, key())

    def review(word: str, by: bool = False) -> Step:
        return Step("review", word, "vendor", f"msg_{uuid.uuid4().hex}", by)

    recipes: list[Callable[[], list[Step]]] = [
        # Through the exam, then a verdict of every kind.
        lambda: [move("started"), move("submitted"), review("passed")],
        lambda: [
            move("started"),
            move("ready_to_submit"),
            move("submitted"),
            review("violation", by=True),
        ],
        lambda: [move("started"), move("submitted"), review("suspicious")],
        lambda: [move("started"), move("submitted"), review("not_reviewed")],
        # A review before the submit is held, and applied right after it.
        lambda: [move("started"), review("passed"), move("submitted")],
        lambda: [
            move("download_software_clicked"),
            review("violation", by=True),
            move("started"),
            move("submitted"),
        ],
        # The vendor's "ready", then the exam.
        lambda: [
            Step("ready", key=f"ready_{uuid.uuid4().hex}"),
            move("started"),
            move("submitted"),
        ],
        # Declines that cascade to the learner's other exams of the course.
        lambda: [move("declined")],
        lambda: [move("started"), move("declined")],
        # Staff at work, a rejection cascading too.
        lambda: [
            move("started", "staff"),
            move("submitted", "staff"),
            move("second_review_required", "staff"),
            move("rejected", "staff"),
        ],
        lambda: [move("started", "staff"), move("error", "staff"), move("verified", "staff")],
        # The LMS relaying the learner's clicks.
        lambda: [move("started", "relay"), move("submitted", "relay")],
        # What a learner may not do, and time-outs kept from created.
        lambda: [move("verified"), move("timed_out")],
        lambda: [move("started"), move("submitted"), move("error"), move("declined")],
        lambda: [move("started"), move("created")],  # re-entering submits
    ]
    stories = []
    for learner in learners:
        steps = rng.choice(recipes)()
        repeats = {i for i in range(len(steps)) if rng.random() < 0.3}
        stories.append(Story(learner, rng.randrange(courses), steps, repeats))
    return stories


@dataclass
class Driver:
    """Sends the stories through the API with several threads; counts what it sent."""

    url: str
    admin: int
    attempts: dict[int, dict[str, Any]]  # learner -> the attempt made for them in setup
    threads: int = 12
    sent: Counter[int] = field(default_factory=Counter)  # status code -> count
    retried: int = 0
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)

    def run(self, stories: Sequence[Story]) -> None:
        with ThreadPoolExecutor(self.threads) as pool:
            for result in pool.map(self._story, stories):
                if result:
                    self.errors.append(result)

    def _story(self, story: Story) -> str | None:
        client = httpx.Client(base_url=self.url, timeout=30)
        attempt = self.attempts[story.learner]
        try:
            for index, step in enumerate(story.steps):
                first = self._send(client, story, attempt, step)
                if index in story.repeats:
                    again = self._send(client, story, attempt, step, repeat=True)
                    if again != first:
                        return f"a repeat was answered differently: {first} then {again}"
        except AssertionError as exc:
            return str(exc)
        finally:
            client.close()
            with self.lock:
                self.done += 1
        return None

    def _send(
        self,
        client: httpx.Client,
        story: Story,
        attempt: dict[str, Any],
        step: Step,
        repeat: bool = False,
    ) -> Any:
        """Send until accepted: the same key again after a fault. Returns the answer's id."""
        for _ in range(600):
            try:
                response = self._request(client, story, attempt, step)
            except httpx.TransportError:
                with self.lock:
                    self.retried += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.sent[response.status_code] += 1
            if response.status_code >= 500:
                with self.lock:
                    self.retried += 1
                time.sleep(0.2)
                continue
            assert response.status_code in (200, 202), (step, response.status_code, response.text)
            body = response.json()
            return body.get("transition_id"), body.get("review_id")
        raise AssertionError(f"{step} was never accepted")

    def _request(
        self, client: httpx.Client, story: Story, attempt: dict[str, Any], step: Step
    ) -> httpx.Response:
        if step.kind == "move":
            headers = {"Idempotency-Key": step.key}
            body: dict[str, Any] = {"to_status": step.to}
            if step.source == "learner":
                headers |= bearer(story.learner)
            elif step.source == "staff":
                headers |= bearer(self.admin, staff=True)
            else:
                headers |= bearer(self.admin, staff=True)
                body["acting_for_learner"] = True
            return client.post(
                f"/v1/attempts/{attempt['attempt_id']}/transitions", json=body, headers=headers
            )
        if step.kind == "review":
            payload: dict[str, Any] = {"attempt_code": attempt["attempt_code"], "status": step.to}
            if step.reviewed_by:
                payload["reviewed_by"] = "reviewer@vendor.example"
            raw, headers = signed("acme", payload, webhook_id=step.key)
            return client.post("/v1/providers/acme/reviews", content=raw, headers=headers)
        raw, headers = signed("acme", b"", webhook_id=step.key)
        return client.post(
            f"/v1/providers/acme/attempts/{attempt['external_id']}/ready",
            content=raw,
            headers=headers,
        )

    @property
    def requests(self) -> int:
        return sum(self.sent.values())


def replay(
    stories: Sequence[Story],
    exams: Sequence[ModelExam],
    first_exam: dict[int, int],
) -> Model:
    """What the final state must be: every story replayed in order through the model."""
    model = Model(providers={"acme": ACME})
    for exam in exams:
        model.add_exam(exam)
    for story in stories:
        exam_id = first_exam[story.course]
        model.add_attempt(exam_id, story.learner, external_id=f"session-{story.learner}")
    for story in stories:
        key = (first_exam[story.course], story.learner)
        for step in story.steps:
            if step.kind == "move":
                source = "learner" if step.source == "relay" else step.source
                model.request(key, step.to, source, step.key)
            elif step.kind == "review":
                model.review(key, "acme", step.key, step.to, step.reviewed_by)
            elif model.attempts[key].external_id is not None:
                model.request(key, "ready_to_start", "vendor", step.key)
            model.run_cascades()
    return model
