"""The FastAPI app: thin ingestion. Authenticate, decide access, validate, record, publish."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from celery import Celery
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from prometheus_client import REGISTRY
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from api import errors, ingest
from api.metrics import BacklogCollector, authorized, exposition
from api.middleware import BodyLimit, Metrics
from api.routes import attempts, courses, edx, exams, health, transitions, users, vendors
from config import Settings, get_settings, heap
from config.logging import install_filter
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from workers.app import app as default_celery_app
from workers.publisher import CeleryPublisher, CoalescingPublisher, drain_waiting_for
from workers.status import status_report

log = logging.getLogger(__name__)

DESCRIPTION = """
proctorq applies the status changes of proctored-exam attempts.

**The LMS and its users** call with `Authorization: Bearer <JWT>`, signed with the configured
key, carrying the claims an Open edX LMS issues (`user_id`, `preferred_username`, `email`,
`administrator`, and `exp`). A transition request is answered `202` as soon as it is recorded;
a worker applies it in the order received. Follow it with `GET /v1/transitions/{id}?wait=10`.

**Proctoring vendors** sign their webhooks as the
[Standard Webhooks](https://www.standardwebhooks.com/) specification says, or speak
edx-proctoring's REST backend protocol with a token from `POST /oauth2/access_token`.

Every error is `{"detail": "<one sentence>"}`.
"""


# Under a steady stream of requests, wake-ups are gathered this long into one message
# (workers/publisher.py); alone, a request's wake-up goes out at once.
PUBLISH_LINGER_SECONDS = 0.010


def create_app(
    settings: Settings | None = None,
    uow: UnitOfWork | None = None,
    celery: Celery | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    celery = celery or default_celery_app
    if uow is None:
        # A connection per request thread: uvicorn's threadpool runs up to 40 at once.
        engine = make_engine(settings.database_url, pool_size=20, max_overflow=20)
        publisher = CoalescingPublisher(
            CeleryPublisher(
                celery,
                pause_seconds=settings.publish_pause_seconds,
                drain_waiting=drain_waiting_for(settings),
            ),
            linger_seconds=PUBLISH_LINGER_SECONDS,
        )
        uow = UnitOfWork(make_session_factory(engine), publisher)

    shortcut = ingest.Shortcut(lambda: app.state.uow)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_filter(logging.getLogger("uvicorn"))
        install_filter()
        await shortcut.start()
        heap.settle()
        yield
        await shortcut.close()
        flush = getattr(uow.publisher, "flush", None)
        if flush is not None:
            await run_in_threadpool(flush)

    # The documentation pages load Swagger UI and ReDoc from this app, not from a CDN, so
    # /docs works on a machine without internet access.
    app = FastAPIOffline(
        title="proctorq",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "exams", "description": "Exams, managed by course staff."},
            {"name": "attempts", "description": "A learner's attempt at an exam."},
            {"name": "transitions", "description": "Requests to change an attempt's status."},
            {"name": "vendors", "description": "Signed webhooks from proctoring vendors."},
            {
                "name": "edx-proctoring vendors",
                "description": "Vendors speaking edx-proctoring's REST backend protocol, at "
                "its paths and with its answers.",
            },
            {"name": "courses", "description": "Course names, contact links and staff."},
            {"name": "users", "description": "Users as the LMS knows them; their credit."},
            {"name": "health", "description": "For load balancers and orchestrators."},
        ],
    )
    app.state.settings = settings
    app.state.uow = uow
    app.state.celery = celery
    errors.install(app)
    for module in (exams, attempts, transitions, courses, users, vendors, health):
        app.include_router(module.router)
    app.include_router(edx.router)
    app.include_router(edx.callbacks)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        token = settings.metrics_token
        if token is not None and not authorized(
            request.headers.get("authorization"), token.get_secret_value()
        ):
            return errors.problem(
                401,
                "The metrics need Authorization: Bearer <PROCTORQ_METRICS_TOKEN>.",
                {"WWW-Authenticate": "Bearer"},
            )
        # In a thread: collecting may wait (briefly) for the backlog to be read.
        body, content_type = await run_in_threadpool(exposition)
        return Response(body, media_type=content_type)

    app.add_middleware(Metrics)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _put_lane_in_front(app, shortcut, settings.max_body_bytes)
    _register_backlog(uow, celery, settings)
    return app


_collector: BacklogCollector | None = None


# A backlog read gives up after this long, connecting or running its statements: a database
# that does not answer must cost the metrics a few seconds, not the operating system's TCP
# timeout.
BACKLOG_TIMEOUT_SECONDS = 2


def _backlog_engine(uow: UnitOfWork) -> Engine:
    """An engine of its own for the backlog: one connection, short timeouts, apart from the
    pool the requests use."""
    url = uow.engine.url
    rendered = url.render_as_string(hide_password=False)
    if url.get_backend_name() == "postgresql":
        return make_engine(
            rendered,
            pool_size=1,
            max_overflow=0,
            pool_timeout=BACKLOG_TIMEOUT_SECONDS,
            connect_args={
                "connect_timeout": BACKLOG_TIMEOUT_SECONDS,
                "options": f"-c statement_timeout={BACKLOG_TIMEOUT_SECONDS * 1000}",
            },
        )
    return make_engine(rendered)


def _put_lane_in_front(app: FastAPI, shortcut: ingest.Shortcut, max_body_bytes: int) -> None:
    """The ingest lane before everything else, the framework's own middleware included:
    Starlette builds its stack at the first request, with this method of the app."""
    build = app.build_middleware_stack

    def with_lane() -> ASGIApp:
        return ingest.IngestLane(build(), shortcut, max_body_bytes)

    app.build_middleware_stack = with_lane  # type: ignore[method-assign]


def _register_backlog(uow: UnitOfWork, celery: Celery, settings: Settings) -> None:
    """One backlog collector per process, reading the latest app's store and broker."""
    global _collector

    engines: list[Engine] = []  # made at the first scrape: most apps are never scraped

    def read() -> dict[str, Any]:
        if not engines:
            engines.append(_backlog_engine(uow))
        return status_report(
            UnitOfWork(make_session_factory(engines[0])), celery, settings.broker_url
        )

    def close() -> None:
        for engine in engines:
            engine.dispose()

    if _collector is not None:
        REGISTRY.unregister(_collector)
        _collector.close()
    _collector = BacklogCollector(read, close=close)
    REGISTRY.register(_collector)


def app_factory() -> FastAPI:
    """What uvicorn runs (`proctorq api`)."""
    return create_app()
