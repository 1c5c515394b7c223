"""What a worker process keeps for its lifetime: an engine, a publisher, mail and HTTP clients.

Created lazily in the process that uses them: a prefork pool forks its children after the
parent has started, and a database connection must never cross a fork.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable
from typing import TypeVar

from celery import Celery

from config import get_settings
from proctoring.credit import CreditWebhook
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.edx_client import EdxRestClient
from proctoring.emails import Backend, open_backend
from proctoring.outbox import RetryPolicy
from proctoring.receivers import EventSender
from workers.app import app
from workers.publisher import CeleryPublisher

T = TypeVar("T")


def per_process(build: Callable[[], T]) -> Callable[[], T]:
    """Build once per process id; a forked child builds its own."""
    cache: dict[int, T] = {}

    @functools.wraps(build)
    def get() -> T:
        pid = os.getpid()
        if pid not in cache:
            cache.clear()
            cache[pid] = build()
        return cache[pid]

    return get


@per_process
def unit_of_work() -> UnitOfWork:
    settings = get_settings()
    # No ping before each checkout: it costs a round trip per task. A connection the database
    # dropped fails its task once, which is retried, and SQLAlchemy then renews the pool.
    engine = make_engine(settings.database_url, pool_pre_ping=False)
    return UnitOfWork(make_session_factory(engine), publisher())


@per_process
def publisher() -> CeleryPublisher:
    return CeleryPublisher(app, pause_seconds=get_settings().publish_pause_seconds)


@per_process
def email_backend() -> Backend:
    settings = get_settings()
    url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    return open_backend(url, settings.mail_dir)


@per_process
def credit_webhook() -> CreditWebhook | None:
    settings = get_settings()
    if not settings.credit_webhook_url:
        return None
    return CreditWebhook(
        settings.credit_webhook_url, timeout=settings.credit_webhook_timeout_seconds
    )


@per_process
def event_sender() -> EventSender:
    settings = get_settings()
    return EventSender(settings.event_webhooks, timeout=settings.event_webhook_timeout_seconds)


@per_process
def vendor_client() -> EdxRestClient:
    """One per process: it keeps each vendor's token until shortly before it expires."""
    settings = get_settings()
    return EdxRestClient(settings.providers, timeout=settings.vendor_timeout_seconds)


def retry_policy() -> RetryPolicy:
    return RetryPolicy(budget=dt.timedelta(hours=get_settings().follow_up_retry_hours))


def celery_app() -> Celery:
    return app
