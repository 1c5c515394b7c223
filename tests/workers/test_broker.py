"""A worker whose Redis connection is gone while it holds unacknowledged messages goes on."""

from __future__ import annotations

import logging

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.message import Message
from kombu.transport.virtual import Channel

from workers import broker


def _taken_then_dropped(connection: Connection, name: str) -> tuple[Channel, Message]:
    """A message taken unacknowledged, then the channel's Redis connection gone, as kombu
    finds it after Redis dropped the connection."""
    broker.install()
    queue = Queue(name, Exchange(name), routing_key=name)
    channel = connection.channel()
    connection.Producer(channel).publish(
        {"ids": [1]}, exchange=queue.exchange, routing_key=name, declare=[queue]
    )
    message = queue(channel).get(no_ack=False)
    assert message is not None
    assert len(channel.qos._delivered) == 1
    channel.connection.client = None
    channel._pool = None
    return channel, message


def test_unacked_messages_are_left_in_redis_when_the_connection_is_gone(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Connection(redis_url) as connection:
        # What kombu meets when Celery closes a connection Redis already dropped.
        channel, _ = _taken_then_dropped(connection, "broker-test")
        with caplog.at_level(logging.WARNING, logger="workers.broker"):
            channel.qos.restore_unacked_once()  # raised AttributeError before
        assert "1 unacknowledged message(s) left" in caplog.text

    # Still in Redis's unacked index: a worker restores it after the visibility timeout.
    client = redis.Redis.from_url(redis_url)
    assert client.hlen("unacked") == 1


def test_an_acknowledgement_on_a_dropped_connection_leaves_the_message(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A task finished while Redis was away: its acknowledgement must not stop the worker."""
    with Connection(redis_url) as connection:
        channel, message = _taken_then_dropped(connection, "broker-ack")
        with caplog.at_level(logging.WARNING, logger="workers.broker"):
            message.ack()  # raised AttributeError before, which Celery finds unrecoverable
        assert "acknowledgement left to the visibility timeout" in caplog.text
        assert channel.qos._delivered == {}
    client = redis.Redis.from_url(redis_url)
    assert client.hlen("unacked") == 1
