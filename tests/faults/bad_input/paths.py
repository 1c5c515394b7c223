"""Bad path and query values, unknown resources, and methods a path does not serve."""

from __future__ import annotations

import json

from tests.faults.bad_input.probes import BAD_INTS, JSON, Corpus
from tests.faults.bad_input.world import Setup, existing_exam
from tests.support.tokens import bearer


def add_paths(c: Corpus, s: Setup) -> None:
    w = s.world
    # 3. Paths and queries: bad ids, too long or NUL text, unknown resources.
    learner = bearer(w.learner)
    admin = bearer(s.admin, staff=True)
    staff = bearer(w.staff)
    id_paths = [
        ("GET", "/v1/exams/{}", learner, 422, 404),
        ("PATCH", "/v1/exams/{}", staff, 422, 404),
        ("POST", "/v1/exams/{}/attempts", learner, 422, 404),
        ("GET", "/v1/attempts/{}", learner, 422, 404),
        ("DELETE", "/v1/attempts/{}", staff, 422, 404),
        ("POST", "/v1/attempts/{}/transitions", learner, 422, 404),
        ("GET", "/v1/attempts/{}/transitions", learner, 422, 404),
        ("GET", "/v1/transitions/{}", learner, 422, 404),
        ("PUT", "/v1/courses/" + w.course + "/staff/{}", admin, 422, None),
        ("DELETE", "/v1/courses/" + w.course + "/staff/{}", admin, 422, None),
        ("PUT", "/v1/users/{}", admin, 422, None),
        ("GET", "/v1/users/{}/credit", learner, 422, None),
    ]
    bodies = {
        "PATCH": {"exam_name": "x"},
        "POST": {"to_status": "started"},
        "PUT": {"username": "u", "email": "u@example.test"},
    }
    for method, template, headers, bad, unknown in id_paths:
        body = bodies.get(method) if "staff" not in template else None
        raw = b"" if body is None else json.dumps(body).encode()
        with_body = {**headers, **(JSON if body is not None else {})}
        for value in BAD_INTS:
            expect = {bad, 403} if template.startswith("/v1/users/{}/credit") else bad
            shown = value if len(value) < 40 else f"of {len(value)} digits"
            c.add(
                f"{method} {template}: id {shown}",
                method,
                template.format(value),
                expect,
                with_body,
                raw,
            )
        if unknown is not None:
            c.add(
                f"{method} {template}: unknown id",
                method,
                template.format(987_654_321),
                unknown,
                with_body,
                raw,
            )
    for label, url, expect in [
        ("unknown exam", "/v1/exams/2000000000", 404),
        ("unknown content", f"/v1/courses/{w.course}/exams/fx-nothing", 404),
        ("NUL in content id", f"/v1/courses/{w.course}/exams/a%00b", 422),
        ("too long content id", f"/v1/courses/{w.course}/exams/{'x' * 256}", 422),
        ("NUL in course id", "/v1/courses/a%00b/exams", 422),
        ("too long course id", f"/v1/courses/{'x' * 256}/exams", 422),
        ("active_only not a boolean", f"/v1/courses/{w.course}/exams?active_only=maybe", 422),
        ("practice not a boolean", f"/v1/courses/{w.course}/exams?practice=2", 422),
        ("archived attempt", f"/v1/attempts/{s.archived['attempt_id']}", 404),
        ("wait over 30", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=31", 422),
        ("negative wait", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=-1", 422),
        ("wait not a number", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=abc", 422),
        ("wait nan", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=nan", 422),
        ("wait inf", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=inf", 422),
        ("empty course_id", f"/v1/users/{w.learner}/credit?course_id=", 422),
        ("NUL course_id", f"/v1/users/{w.learner}/credit?course_id=a%00b", 422),
        ("unknown route", "/v1/nothing", 404),
        ("unknown version", "/v2/exams/1", 404),
    ]:
        c.add(f"GET {label}", "GET", url, expect, learner)
    archived = s.archived["attempt_id"]
    c.add(
        "transition to an archived attempt",
        "POST",
        f"/v1/attempts/{archived}/transitions",
        404,
        {**learner, **JSON},
        b'{"to_status": "started"}',
    )
    c.add("archive an archived attempt", "DELETE", f"/v1/attempts/{archived}", 404, staff)
    c.add(
        "attempt at an inactive exam",
        "POST",
        f"/v1/exams/{s.inactive}/attempts",
        422,
        {**learner, **JSON},
        b"{}",
    )
    c.add(
        "a second attempt", "POST", f"/v1/exams/{w.exam}/attempts", 409, {**learner, **JSON}, b"{}"
    )
    c.add(
        "attempt for an unknown user",
        "POST",
        f"/v1/exams/{s.exam2}/attempts",
        404,
        {**admin, **JSON},
        json.dumps({"user_id": 987_654_321}).encode(),
    )
    existing = existing_exam(s)
    c.add(
        "a second exam for the same content",
        "POST",
        "/v1/exams",
        409,
        {**admin, **JSON},
        json.dumps(existing).encode(),
    )
    c.add(
        "an exam for an unknown exam_id's course",
        "POST",
        "/v1/exams",
        404,
        {**staff, **JSON},
        json.dumps({"exam_id": 2_000_000_000, "content_id": "x"}).encode(),
    )
    c.add(
        "change to an unknown provider",
        "PATCH",
        f"/v1/exams/{w.exam}",
        422,
        {**staff, **JSON},
        b'{"provider": "nobody"}',
    )
    c.add(
        "Content-Length not a number",
        "PUT",
        f"/v1/courses/{w.course}",
        400,
        {**admin, **JSON, "content-length": "abc"},
        b'{"name": "x"}',
    )


def add_methods(c: Corpus, s: Setup) -> None:
    w = s.world
    admin = bearer(s.admin, staff=True)
    attempt = s.attempt["attempt_id"]
    transition = s.transition[1]["transition_id"]
    ready_url = f"/v1/providers/acme/attempts/{s.vendor['external_id']}/ready"
    # 7. Methods a path does not serve.
    for method, url in [
        ("PUT", "/v1/exams"),
        ("DELETE", "/v1/exams"),
        ("PUT", f"/v1/exams/{w.exam}"),
        ("DELETE", f"/v1/exams/{w.exam}"),
        ("POST", f"/v1/courses/{w.course}/exams"),
        ("GET", f"/v1/courses/{w.course}"),
        ("DELETE", f"/v1/courses/{w.course}"),
        ("GET", f"/v1/courses/{w.course}/staff/{w.staff}"),
        ("GET", f"/v1/exams/{w.exam}/attempts"),
        ("PATCH", f"/v1/attempts/{attempt}"),
        ("PUT", f"/v1/attempts/{attempt}/transitions"),
        ("DELETE", f"/v1/transitions/{transition}"),
        ("GET", "/v1/providers/acme/reviews"),
        ("PUT", ready_url),
        ("DELETE", f"/v1/users/{w.learner}"),
        ("POST", f"/v1/users/{w.learner}/credit"),
        ("POST", "/healthz"),
        ("DELETE", "/readyz"),
        ("OPTIONS", f"/v1/attempts/{attempt}"),
        ("TRACE", "/v1/exams"),
    ]:
        c.add(f"{method} {url}", method, url, 405, {**admin, **JSON}, b'{"to_status": "started"}')
