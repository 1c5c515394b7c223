"""The whole corpus, and the routes it is aimed at."""

from __future__ import annotations

from tests.faults.bad_input.access import add_access
from tests.faults.bad_input.bodies import add_bodies, add_credentials
from tests.faults.bad_input.paths import add_methods, add_paths
from tests.faults.bad_input.probes import NOT_SERVED, NOWHERE, Corpus, Probe, aimed_at
from tests.faults.bad_input.vendors import add_idempotency_keys, add_vendors
from tests.faults.bad_input.world import Setup, routes

# Every route of the API under /v1, as "METHOD /path/{template}".
ROUTES = (
    "POST /v1/exams",
    "PATCH /v1/exams/{exam_id}",
    "GET /v1/exams/{exam_id}",
    "GET /v1/courses/{course_id}/exams",
    "GET /v1/courses/{course_id}/exams/{content_id}",
    "PUT /v1/courses/{course_id}",
    "PUT /v1/courses/{course_id}/staff/{user_id}",
    "DELETE /v1/courses/{course_id}/staff/{user_id}",
    "POST /v1/exams/{exam_id}/attempts",
    "GET /v1/attempts/{attempt_id}",
    "DELETE /v1/attempts/{attempt_id}",
    "POST /v1/attempts/{attempt_id}/transitions",
    "GET /v1/attempts/{attempt_id}/transitions",
    "GET /v1/transitions/{transition_id}",
    "PUT /v1/users/{user_id}",
    "GET /v1/users/{user_id}/credit",
    "POST /v1/providers/{provider}/reviews",
    "POST /v1/providers/{provider}/attempts/{external_id}/ready",
)
# What the corpus is run as: one group of probes per route, and those no route serves.
TARGETS = (*ROUTES, NOT_SERVED, NOWHERE)


def build(s: Setup) -> Corpus:
    """Every bad request, in this order: credentials, bodies, paths and queries, who may act,
    Idempotency-Keys, vendors, methods. Built afresh for each run, so that its tokens and
    webhook timestamps are new."""
    c = Corpus()
    all_routes = routes(s)
    add_credentials(c, all_routes)
    add_bodies(c, all_routes)
    add_paths(c, s)
    add_access(c, s)
    add_idempotency_keys(c, s)
    add_vendors(c, s, all_routes)
    add_methods(c, s)
    return c


def by_target(corpus: Corpus, served: dict[str, set[str]]) -> dict[str, list[Probe]]:
    """The corpus' probes by the route they are aimed at (see ``aimed_at``), in corpus order."""
    found: dict[str, list[Probe]] = {}
    for probe in corpus.probes:
        found.setdefault(aimed_at(probe, served), []).append(probe)
    return found
