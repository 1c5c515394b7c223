"""The Prometheus endpoint: requests and latency per route, and the backlog."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import World, bearer
from workers.app import QUEUES


def scrape(world: World) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = world.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_and_timed_per_route_template(world: World) -> None:
    before = scrape(world)
    attempt = world.new_attempt()["attempt_id"]
    route = "/v1/attempts/{attempt_id}/transitions"
    for status in ("started", "submitted"):
        answer = world.client.post(
            f"/v1/attempts/{attempt}/transitions",
            headers=bearer(world.learner),
            json={"to_status": status},
        )
        assert answer.status_code == 202, answer.text
    assert world.client.get("/v1/no/such/route").status_code == 404

    after = scrape(world)
    requests = "proctorq_http_requests_total"
    counted = value(after, requests, method="POST", route=route, status="202")
    assert counted - value(before, requests, method="POST", route=route, status="202") == 2
    timed = "proctorq_http_request_seconds_count"
    assert (
        value(after, timed, method="POST", route=route)
        - value(before, timed, method="POST", route=route)
        == 2
    )
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, requests, **unmatched) - value(before, requests, **unmatched) == 1
    # Labelled by template, never by URL: ids in labels would grow the series without bound.
    labelled = {dict(labels)["route"] for _, labels in after if "route" in dict(labels)}
    templates = set(world.client.get("/openapi.json").json()["paths"]) | {"/metrics", "unmatched"}
    assert labelled <= templates, labelled - templates


def test_the_backlog_is_exposed_by_state_queue_lag_and_failures(world: World) -> None:
    attempt = world.new_attempt()["attempt_id"]
    answer = world.client.post(
        f"/v1/attempts/{attempt}/transitions",
        headers=bearer(world.learner),
        json={"to_status": "started"},
    )
    assert answer.status_code == 202, answer.text

    samples = scrape(world)  # no worker runs here: the request waits, pending, on its queue
    assert value(samples, "proctorq_transitions", state="pending") >= 1
    for state in ("applied", "noop", "rejected", "failed"):
        assert ("proctorq_transitions", frozenset({("state", state)})) in samples, state
    for queue in QUEUES:
        assert ("proctorq_queue_depth", frozenset({("queue", queue)})) in samples, queue
    assert value(samples, "proctorq_queue_depth", queue="transitions") >= 1
    assert value(samples, "proctorq_oldest_pending_seconds") > 0  # the request above waits
    for gauge in ("proctorq_outbox_lag_seconds", "proctorq_failed"):
        assert (gauge, frozenset()) in samples, gauge
