"""The one Celery app, configured from the settings object.

Importing this module reads no settings: the app's configuration is a promise Celery keeps the
first time something needs it (a task sent, a worker started). So the command line can import
it and still report a mistake in the settings as one sentence.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from kombu.entity import Queue

from config import Settings, get_settings, heap
from workers import broker
from workers.routing import (
    EXPIRE_OVERDUE_ATTEMPTS,
    MAX_RETRY_DELAY_SECONDS,
    QUEUES,
    RELAY_OUTBOX,
    ROUTES,
    SWEEP_INBOX,
    TASK_MODULES,
    is_embedded,
)


def transport_options(settings: Settings) -> dict[str, Any]:
    if is_embedded(settings.broker_url):
        # kombu hands these straight to create_engine: only engine arguments belong here.
        # SQLite waits for the file's lock instead of failing when several processes poll.
        return {"connect_args": {"timeout": 30}}
    return {
        # A message a worker has taken but not acknowledged comes back after this long. It
        # must outlast the longest task (its hard time limit) and the longest retry delay, or
        # Redis hands a running or waiting task to a second worker. Work lost to a dead worker
        # does not wait for it: the sweeper republishes pending rows within seconds.
        "visibility_timeout": settings.task_time_limit_seconds * 2 + MAX_RETRY_DELAY_SECONDS,
        # Fail fast when the broker is down: the rows are recorded, the sweeper publishes later.
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "max_retries": 1,
    }


def configuration(settings: Settings) -> dict[str, Any]:
    embedded = is_embedded(settings.broker_url)
    broker.install()  # a worker survives Redis going away with messages unacknowledged
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # No result backend: results live in our own tables.
        "result_backend": None,
        "task_ignore_result": True,
        # Acknowledge after the work, not before: a worker that dies mid-task hands the
        # message back instead of losing it. Every effect is idempotent, so a second run
        # is harmless.
        "task_acks_late": True,
        # When a pool process is killed (OOM, SIGKILL), requeue its message rather than
        # acknowledge it. The delivery count in the database stops a message that keeps
        # killing workers.
        "task_reject_on_worker_lost": True,
        # One message per process at a time: a prefetched message would wait behind a slow
        # one while another process sits idle, and would stay invisible to other workers.
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": settings.task_time_limit_seconds - 5,
        # Flower sees every task, with the queue it was sent to. Events need a broker with
        # fanout; the embedded one has none.
        "worker_send_task_events": not embedded,
        "task_send_sent_event": not embedded,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "transitions",
        "task_routes": ROUTES,
        "task_create_missing_queues": False,
        # Publishing from the API must not hang on a broker outage: one quick try, then the
        # row waits for the sweeper.
        "task_publish_retry_policy": {"max_retries": 0},
        "beat_schedule": {
            "sweep-inbox": {
                "task": SWEEP_INBOX,
                "schedule": settings.sweep_interval_seconds,
            },
            "relay-outbox": {
                "task": RELAY_OUTBOX,
                "schedule": settings.sweep_interval_seconds,
            },
            "expire-overdue-attempts": {
                "task": EXPIRE_OVERDUE_ATTEMPTS,
                "schedule": settings.timeout_sweep_interval_seconds,
            },
        },
        "beat_schedule_filename": str(settings.var_dir / "celerybeat-schedule"),
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "include": list(TASK_MODULES),
    }


def create_app(settings: Settings | None = None, current: bool = True) -> Celery:
    """An app configured now, from these settings (tests and benchmarks make their own)."""
    app = Celery("proctorq", set_as_current=current)
    app.conf.update(configuration(settings or get_settings()))
    return app


app = Celery("proctorq", set_as_current=True)
app.add_defaults(lambda: configuration(get_settings()))


@signals.worker_ready.connect
@signals.worker_process_init.connect
def _settle_heap(**_: Any) -> None:
    """A worker's process (and each pool process it forks) ready: config/heap.py."""
    heap.settle()
