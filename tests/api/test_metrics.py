"""The Prometheus endpoint: requests and latency per route, and the backlog."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from config import get_settings, load_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from tests.support.api import World
from tests.support.processes import wait_until
from tests.support.servers import free_port
from tests.support.tokens import bearer
from workers.routing import QUEUES


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


# --- a protected, bounded scrape --------------------------------------------------------------


def test_a_configured_token_is_required(stack_parts: tuple[UnitOfWork, Any]) -> None:
    uow, celery = stack_parts
    token = "a-metrics-token-for-the-tests-0123456789"
    settings = load_settings(metrics_token=token, _env_file=None)
    with TestClient(create_app(settings, uow=uow, celery=celery)) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {token}"}):
            answer = client.get("/metrics", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.json()["detail"].endswith("."), answer.text
            assert "PROCTORQ_METRICS_TOKEN" in answer.json()["detail"]
            assert token not in answer.text
            assert answer.headers["www-authenticate"] == "Bearer"
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert "proctorq_store_up 1.0" in answer.text


@contextlib.contextmanager
def silent_database() -> Iterator[str]:
    """A PostgreSQL URL whose server accepts connections and never answers: the worst case,
    where only a timeout ends a connection attempt."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # never accepted: the kernel completes the handshake, no one talks
        yield f"postgresql+psycopg://proctorq@127.0.0.1:{listener.getsockname()[1]}/proctorq"


def test_an_unreachable_store_stalls_neither_the_scrape_nor_other_requests(
    stack_parts: tuple[UnitOfWork, Any],
) -> None:
    _, celery = stack_parts
    with silent_database() as url:
        engine = make_engine(url)
        app = create_app(
            get_settings(), uow=UnitOfWork(make_session_factory(engine)), celery=celery
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        serving = threading.Thread(target=server.run, daemon=True)
        serving.start()
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: server.started, timeout=10, what="the API to start")
            scrapes: list[tuple[float, httpx.Response]] = []

            def scrape_once() -> None:
                started = time.monotonic()
                answer = httpx.get(f"{base}/metrics", timeout=30)
                scrapes.append((time.monotonic() - started, answer))

            scrapers = [threading.Thread(target=scrape_once) for _ in range(4)]
            for scraper in scrapers:
                scraper.start()
            slowest = 0.0
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.05)
            for scraper in scrapers:
                scraper.join(30)
            # The silent database never answers: a loop held by a scrape would keep /healthz
            # waiting for as long as it stays silent (the whole test), or for four scrapes'
            # timeouts in a row. The bound leaves room for a busy machine.
            assert slowest < 4, f"/healthz took {slowest:.2f} s while /metrics was scraped"
            assert len(scrapes) == 4
            for took, answer in scrapes:
                assert answer.status_code == 200
                assert "proctorq_store_up 0.0" in answer.text, answer.text
                assert took < 8, f"a scrape took {took:.1f} s"
            # The failure is remembered: the next scrape does not wait for the store again.
            started = time.monotonic()
            assert "proctorq_store_up 0.0" in httpx.get(f"{base}/metrics", timeout=30).text
            assert time.monotonic() - started < 2  # under the wait for a read
        finally:
            server.should_exit = True
            serving.join(10)
            engine.dispose()
