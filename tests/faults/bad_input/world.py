"""What the corpus is sent against: users, courses, exams and attempts made through the API,
a transition, a review and a "ready" notice already accepted (for the replays), and one request
per route that is accepted as it is, for the corpus to spoil."""

from __future__ import annotations

import itertools
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from tests.faults.bad_input.probes import Route, webhook
from tests.support.api import World
from tests.support.tokens import bearer


@dataclass
class Setup:
    world: World
    admin: int
    rival: int  # staff of another course
    learner3: int
    newcomer: int
    course2: str
    content: str
    exam2: int
    exam3: int
    inactive: int
    attempt: dict[str, Any]  # the learner's, on world.exam
    others: dict[str, Any]  # the other learner's, on world.exam
    second: dict[str, Any]  # the learner's, on exam3
    doomed: dict[str, Any]
    archived: dict[str, Any]
    staff2: int
    vendor: dict[str, Any]  # acme
    vendor2: dict[str, Any]  # acme
    cleanview: dict[str, Any]
    key: str
    transition: tuple[int, Any]
    review: tuple[int, Any]
    review_raw: bytes
    review_id: str
    ready: tuple[int, Any]
    ready_id: str


def set_up(client: TestClient) -> Setup:
    world = World(client)
    ok = world.ok
    admin = world.admin
    as_admin = bearer(admin, staff=True)
    rival, learner3, staff2 = new_ids(3)
    newcomer = next_id()
    course2 = f"course-v1:proctorq+FAULTS{next_id()}+2026"
    for user in (rival, learner3, staff2):
        ok(
            client.put(
                f"/v1/users/{user}",
                headers=as_admin,
                json={"username": f"user{user}", "email": f"user{user}@example.test"},
            )
        )
    ok(client.put(f"/v1/courses/{course2}/staff/{rival}", headers=as_admin))
    ok(client.put(f"/v1/courses/{world.course}/staff/{staff2}", headers=as_admin))
    exam2, exam3 = world.new_exam(), world.new_exam()
    inactive = world.new_exam(is_active=False)
    content = ok(client.get(f"/v1/exams/{world.exam}", headers=bearer(world.learner)))["content_id"]
    attempt = world.new_attempt()
    others = world.new_attempt(user=world.other)
    second = world.new_attempt(exam=exam3)
    doomed = world.new_attempt(user=learner3)
    archived = world.new_attempt(exam=world.new_exam())
    client.delete(f"/v1/attempts/{archived['attempt_id']}", headers=bearer(world.staff))
    acme = world.new_exam(provider="acme")
    vendor = world.new_attempt(exam=acme, external_id=f"fx-acme-{uuid.uuid4().hex}")
    vendor2 = world.new_attempt(
        user=world.other, exam=acme, external_id=f"fx-acme-{uuid.uuid4().hex}"
    )
    cleanview = world.new_attempt(
        exam=world.new_exam(provider="cleanview"), external_id=f"fx-cv-{uuid.uuid4().hex}"
    )
    key = f"fx-key-{uuid.uuid4().hex}"
    first = client.post(
        f"/v1/attempts/{attempt['attempt_id']}/transitions",
        json={"to_status": "started"},
        headers={**bearer(world.learner), "Idempotency-Key": key},
    )
    assert first.status_code == 202, first.text
    review_raw = json.dumps({"attempt_code": vendor["attempt_code"], "status": "passed"}).encode()
    review_id = f"msg_{uuid.uuid4().hex}"
    review = client.post(
        "/v1/providers/acme/reviews",
        content=review_raw,
        headers=webhook("acme", review_raw, webhook_id=review_id),
    )
    assert review.status_code == 202, review.text
    ready_id = f"msg_{uuid.uuid4().hex}"
    ready = client.post(
        f"/v1/providers/acme/attempts/{vendor['external_id']}/ready",
        headers=webhook("acme", b"", webhook_id=ready_id),
    )
    assert ready.status_code == 202, ready.text
    return Setup(
        world=world,
        admin=admin,
        rival=rival,
        learner3=learner3,
        newcomer=newcomer,
        course2=course2,
        content=content,
        exam2=exam2,
        exam3=exam3,
        inactive=inactive,
        attempt=attempt,
        others=others,
        second=second,
        doomed=doomed,
        archived=archived,
        staff2=staff2,
        vendor=vendor,
        vendor2=vendor2,
        cleanview=cleanview,
        key=key,
        transition=(first.status_code, first.json()),
        review=(review.status_code, review.json()),
        review_raw=review_raw,
        review_id=review_id,
        ready=(ready.status_code, ready.json()),
        ready_id=ready_id,
    )


_ids = itertools.count(1)


def next_id() -> int:
    return 70_000_000 + os.getpid() % 1000 * 10_000 + next(_ids)


def new_ids(n: int) -> list[int]:
    return [next_id() for _ in range(n)]


def routes(s: Setup) -> dict[str, Route]:
    """One accepted request per route; staff-only ones as global staff, so that a spoiled body
    is refused for what it is (the course staff rule has probes of its own)."""
    w = s.world
    attempt = s.attempt["attempt_id"]
    transition = s.transition[1]["transition_id"]
    text_wrong = [123, None, [], {}, "", "a\x00b", "\ud800", "x" * 256]
    bool_wrong = ["maybe", 2, [], {}, None]
    found = {
        "create exam": Route(
            "POST",
            "/v1/exams",
            s.admin,
            {
                "course_id": w.course,
                "content_id": f"fx-content-{uuid.uuid4().hex}",
                "exam_name": "Added",
                "time_limit_mins": 30,
            },
            wrong={
                "course_id": text_wrong,
                "content_id": text_wrong,
                "exam_name": text_wrong,
                "time_limit_mins": ["abc", -1, 100_001, 1.5, 2**64, None, []],
                "due_date": ["tomorrow", "2026-12-20T23:59:00", [], ""],
                "is_proctored": bool_wrong,
                "provider": ["nobody", 5, "a\x00b"],
            },
            required=("course_id", "content_id", "exam_name", "time_limit_mins"),
        ),
        "change exam": Route(
            "PATCH",
            f"/v1/exams/{w.exam}",
            s.admin,
            {"exam_name": "Renamed", "time_limit_mins": 45},
            wrong={
                "exam_name": text_wrong,
                "time_limit_mins": ["abc", -1, 1.5, 10**30, None],
                "is_active": bool_wrong,
                "is_practice_exam": [None, "maybe"],
                "is_proctored": [None, []],
                "due_date": ["not a date", "2026-12-20T23:59:00"],
                "provider": ["nobody", ""],
            },
        ),
        "read exam": Route("GET", f"/v1/exams/{w.exam}", w.learner),
        "list exams": Route("GET", f"/v1/courses/{w.course}/exams", w.learner),
        "exam by content": Route("GET", f"/v1/courses/{w.course}/exams/{s.content}", w.learner),
        "name course": Route(
            "PUT",
            f"/v1/courses/{w.course}",
            s.admin,
            {"name": "Renamed course", "contact_url": "https://example.test/contact"},
            wrong={
                "name": text_wrong[:1] + text_wrong[4:],
                "contact_url": [5, "a\x00b", "x" * 501],
            },
        ),
        "grant staff": Route("PUT", f"/v1/courses/{w.course}/staff/{w.other}", s.admin),
        "revoke staff": Route("DELETE", f"/v1/courses/{w.course}/staff/{s.staff2}", s.admin),
        "create attempt": Route(
            "POST",
            f"/v1/exams/{s.exam2}/attempts",
            s.admin,
            {"user_id": s.learner3, "taking_as_proctored": True, "external_id": "fx-session"},
            wrong={
                "user_id": ["abc", 0, -5, 2**63, 1.5, []],
                "taking_as_proctored": bool_wrong[:4],
                "external_id": [5, "", "a\x00b", "x" * 256],
            },
        ),
        "read attempt": Route("GET", f"/v1/attempts/{attempt}", w.learner),
        "archive attempt": Route("DELETE", f"/v1/attempts/{s.doomed['attempt_id']}", s.admin),
        "post transition": Route(
            "POST",
            f"/v1/attempts/{attempt}/transitions",
            w.learner,
            {"to_status": "ready_to_submit"},
            wrong={
                "to_status": ["flying", "STARTED", "", 5, None, ["started"], "started\x00"],
                "acting_for_learner": ["maybe", 2, []],
            },
            required=("to_status",),
        ),
        "list transitions": Route("GET", f"/v1/attempts/{attempt}/transitions", w.learner),
        "read transition": Route("GET", f"/v1/transitions/{transition}", w.learner),
        "put user": Route(
            "PUT",
            f"/v1/users/{s.newcomer}",
            s.admin,
            {"username": "newcomer", "email": "newcomer@example.test"},
            wrong={
                "username": text_wrong[:2] + text_wrong[4:7] + ["x" * 151],
                "email": ["not-an-email", "a b@c", 5, "a\x00@b.c", "x" * 250 + "@b.cd"],
                "is_staff": ["maybe", []],
            },
            required=("username", "email"),
        ),
        "read credit": Route("GET", f"/v1/users/{w.learner}/credit", w.learner),
        "post review": Route(
            "POST",
            "/v1/providers/acme/reviews",
            None,
            {"attempt_code": s.vendor2["attempt_code"], "status": "violation"},
            wrong={
                "attempt_code": [5, "", "a\x00b", "x" * 65, []],
                "status": ["flying", "Clean", "", 5, None, "passed\x00"],
                "reviewed_by": [5, "", "x" * 256],
                "comments": [5, None, "x" * 20_001],
            },
            required=("status",),
            strict=False,
        ),
        "vendor ready": Route(
            "POST", f"/v1/providers/acme/attempts/{s.vendor2['external_id']}/ready", None
        ),
    }
    for route in found.values():
        route.staff = route.caller == s.admin
    return found


def existing_exam(s: Setup) -> dict[str, Any]:
    """The body of an exam that exists already (world.exam's content)."""
    return {
        "course_id": s.world.course,
        "content_id": s.content,
        "exam_name": "Twice",
        "time_limit_mins": 5,
    }
