"""Queue depths, read from the broker itself (Flower's own metrics lack them)."""

from __future__ import annotations

from celery import Celery
from kombu.entity import Queue

from workers.routing import QUEUES


def queue_depths(app: Celery, timeout: float = 3.0) -> dict[str, int]:
    """Messages waiting in each queue.

    A passive declare asks the broker without creating anything; a queue it does not know
    (Redis forgets an empty list) holds nothing. Messages a worker has taken but not
    finished are not waiting, so they are not counted.
    """
    depths: dict[str, int] = {}
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout)
        for name in QUEUES:
            channel = connection.channel()
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except connection.channel_errors:
                depths[name] = 0
            finally:
                try:
                    channel.close()
                except connection.channel_errors + connection.connection_errors:
                    pass
    return depths


def declare_queues(app: Celery) -> None:
    """Make every queue exist on the broker now.

    kombu's SQLAlchemy transport (the embedded broker) creates a queue's row on first use
    without handling a concurrent insert: an API publishing the first message while a worker
    starts consuming could both insert it, and the loser's process dies. `up` declares them
    all once, before it starts either.
    """
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
        for name in QUEUES:
            Queue(name)(connection.default_channel).declare()
