"""Who may act: other learners, other courses' staff, learners and course staff acting as
more than they are."""

from __future__ import annotations

import json

from tests.faults.bad_input.probes import JSON, Corpus
from tests.faults.bad_input.world import Setup, existing_exam
from tests.support.tokens import bearer


def add_access(c: Corpus, s: Setup) -> None:
    w = s.world
    learner = bearer(w.learner)
    staff = bearer(w.staff)
    existing = existing_exam(s)

    # 4. Who may act: other learners, other courses' staff, learners acting as staff.
    attempt, others = s.attempt["attempt_id"], s.others["attempt_id"]
    for method, url, body in [
        ("GET", f"/v1/attempts/{others}", None),
        ("GET", f"/v1/attempts/{others}/transitions", None),
        ("POST", f"/v1/attempts/{others}/transitions", {"to_status": "declined"}),
        ("POST", f"/v1/attempts/{others}/transitions", {"to_status": "declined", "x": 1}),
        ("DELETE", f"/v1/attempts/{others}", None),
    ]:
        raw = None if body is None else json.dumps(body).encode()
        headers = {**bearer(w.learner), **(JSON if body is not None else {})}
        c.add(f"a learner: {method} {url} {body or ''}", method, url, 403, headers, raw)
    doomed = s.doomed["attempt_id"]
    transition = s.transition[1]["transition_id"]
    other = bearer(w.other)
    rival = bearer(s.rival)
    for who, headers in (("another learner", other), ("another course's staff", rival)):
        for method, url, body in [
            ("GET", f"/v1/attempts/{attempt}", None),
            ("GET", f"/v1/attempts/{attempt}/transitions", None),
            ("POST", f"/v1/attempts/{attempt}/transitions", {"to_status": "submitted"}),
            ("POST", f"/v1/attempts/{attempt}/transitions", {"to_status": "verified"}),
            ("POST", f"/v1/attempts/{attempt}/transitions", {"to_status": 5, "bad": []}),
            (
                "POST",
                f"/v1/attempts/{attempt}/transitions",
                {"to_status": "started", "acting_for_learner": True},
            ),
            ("GET", f"/v1/transitions/{transition}", None),
            ("GET", f"/v1/transitions/{transition}?wait=99", None),
            ("DELETE", f"/v1/attempts/{doomed}", None),
            ("PATCH", f"/v1/exams/{w.exam}", {"is_active": False}),
            ("PATCH", f"/v1/exams/{w.exam}", {"time_limit_mins": "not even valid"}),
            ("POST", "/v1/exams", {**existing, "content_id": "fx-not-yours"}),
            ("POST", "/v1/exams", {"exam_id": w.exam, "content_id": "fx-not-yours"}),
            ("POST", f"/v1/exams/{w.exam}/attempts", {"user_id": w.learner}),
            ("PUT", f"/v1/courses/{w.course}", {"name": "Mine now"}),
            ("PUT", f"/v1/courses/{w.course}", {"name": 5}),
            ("PUT", f"/v1/courses/{w.course}/staff/{s.rival}", None),
            ("DELETE", f"/v1/courses/{w.course}/staff/{w.staff}", None),
            ("PUT", f"/v1/users/{w.learner}", {"username": "taken", "email": "t@example.test"}),
            (
                "PUT",
                f"/v1/users/{w.learner}",
                {"username": "taken", "email": "t@example.test", "is_staff": True},
            ),
            ("GET", f"/v1/users/{w.learner}/credit", None),
            ("GET", f"/v1/users/{w.learner}/credit?course_id={w.course}", None),
        ]:
            raw = None if body is None else json.dumps(body).encode()
            all_headers = {**headers, **(JSON if body is not None else {})}
            c.add(f"{who}: {method} {url} {body or ''}", method, url, 403, all_headers, raw)
    learner_as_staff = [
        ("PATCH", f"/v1/exams/{w.exam}", {"exam_name": "Mine"}),
        ("POST", "/v1/exams", {**existing, "content_id": "fx-learner"}),
        (
            "POST",
            "/v1/exams",
            {"content_id": "fx-no-course", "exam_name": "x", "time_limit_mins": 1},
        ),
        (
            "POST",
            "/v1/exams",
            {"course_id": "a\x00b", "content_id": "x", "exam_name": "x", "time_limit_mins": 1},
        ),
        (
            "POST",
            "/v1/exams",
            {"course_id": "\ud800", "content_id": "x", "exam_name": "x", "time_limit_mins": 1},
        ),
        (
            "POST",
            "/v1/exams",
            {"course_id": 5, "content_id": "x", "exam_name": "x", "time_limit_mins": 1},
        ),
        ("POST", "/v1/exams", {"exam_id": "1", "content_id": "x"}),
        ("POST", "/v1/exams", {"exam_id": 2**40, "content_id": "x"}),
        ("DELETE", f"/v1/attempts/{attempt}", None),
        ("POST", f"/v1/exams/{w.exam}/attempts", {"user_id": w.other}),
        ("PUT", f"/v1/courses/{w.course}", {"name": "Mine"}),
        ("PUT", "/v1/courses/a%00b", {"name": "Mine"}),
        ("PUT", f"/v1/courses/{'x' * 300}", {"name": "Mine"}),
        ("PUT", f"/v1/courses/{w.course}/staff/{w.learner}", None),
        (
            "PUT",
            f"/v1/users/{w.learner}",
            {"username": "me", "email": "me@example.test", "is_staff": True},
        ),
        ("GET", f"/v1/users/{w.other}/credit", None),
        ("GET", f"/v1/users/{w.other}/credit?course_id=a%00b", None),
        ("GET", f"/v1/users/{w.other}/credit?course_id=%ED%A0%80", None),
    ]
    for method, url, body in learner_as_staff:
        raw = None if body is None else json.dumps(body).encode()
        all_headers = {**learner, **(JSON if body is not None else {})}
        c.add(
            f"learner as staff: {method} {url:.60} {body or ''}", method, url, 403, all_headers, raw
        )
    for method, url in [
        ("PUT", f"/v1/courses/{w.course}/staff/{w.other}"),
        ("DELETE", f"/v1/courses/{w.course}/staff/{s.staff2}"),
    ]:
        c.add(f"course staff as global staff: {method} {url}", method, url, 403, staff)
    c.add(
        "course staff as the LMS: PUT user",
        "PUT",
        f"/v1/users/{s.newcomer}",
        403,
        {**staff, **JSON},
        b'{"username": "n", "email": "n@example.test"}',
    )
