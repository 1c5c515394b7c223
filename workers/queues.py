"""Queue depths, read from the broker itself (Flower's own metrics lack them)."""

from __future__ import annotations

from celery import Celery

from workers.app import QUEUES


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
