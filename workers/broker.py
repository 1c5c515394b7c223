"""kombu's Redis transport, with one failure on a lost connection made harmless.

When Redis goes away while a worker holds unacknowledged messages (`task_acks_late`), Celery
closes the connection, and closing the channel tries to put those messages back. With the
connection already released, kombu 5.7's Redis transport then raises AttributeError
('NoneType' object has no attribute 'hostname') instead of a connection error; Celery counts
it unrecoverable and the worker exits. Seen in tests/faults (Redis restarted mid-run).

Nothing is lost by not restoring them there: they stay in Redis's unacked index, which any
worker restores after the visibility timeout, and their rows are still pending in the
database, which the sweeper publishes again within seconds. So that failure is logged and the
worker goes on reconnecting, as it does for any other lost connection.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


# What kombu raises on a channel whose connection Redis dropped (AttributeError: kombu 5.7
# finds the connection already released).
_GONE = (AttributeError, RedisConnectionError, RedisTimeoutError, OSError)


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except _GONE as exc:
            log.warning(
                "broker connection gone: %d unacknowledged message(s) left to the visibility "
                "timeout and the sweeper (%s)",
                len(self._delivered),
                type(exc).__name__,
            )
            self._delivered.clear()

    def ack(self, delivery_tag: Any) -> None:
        """Acknowledge; on a connection already gone, leave the message to be restored.

        Seen in tests/faults (Redis down while the API keeps receiving): a task that finished
        while Redis was away was acknowledged on the dropped channel, kombu raised
        AttributeError, and Celery stopped the worker. The message stays in the unacked
        index; after the visibility timeout it is delivered again and finds its rows done.
        """
        try:
            super().ack(delivery_tag)
        except _GONE as exc:
            log.warning(
                "broker connection gone: an acknowledgement left to the visibility timeout (%s)",
                type(exc).__name__,
            )
            self._delivered.pop(delivery_tag, None)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except _GONE as exc:
            log.warning(
                "broker connection gone: a rejection left to the visibility timeout (%s)",
                type(exc).__name__,
            )
            self._delivered.pop(delivery_tag, None)


def install() -> None:
    """Make kombu's Redis channels use this QoS. Set on kombu's own class, not a transport of
    our own, so that the broker URL stays redis://, which Flower and kombu's TLS set-up read."""
    kombu_redis.Channel.QoS = QoS
