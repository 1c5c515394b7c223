"""A worker whose Redis connection is gone while it holds unacknowledged messages goes on."""

from __future__ import annotations

import logging

import pytest
import redis
from kombu import Connection, Exchange, Queue

from workers import broker


def test_unacked_messages_are_left_in_redis_when_the_connection_is_gone(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker.install()
    queue = Queue("broker-test", Exchange("broker-test"), routing_key="broker-test")
    with Connection(redis_url) as connection:
        channel = connection.channel()
        producer = connection.Producer(channel)
        producer.publish(
            {"ids": [1]}, exchange=queue.exchange, routing_key="broker-test", declare=[queue]
        )
        message = queue(channel).get(no_ack=False)
        assert message is not None
        assert len(channel.qos._delivered) == 1

        # What kombu meets when Celery closes a connection Redis already dropped.
        channel.connection.client = None
        channel._pool = None
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
    broker.install()
    queue = Queue("broker-ack", Exchange("broker-ack"), routing_key="broker-ack")
    with Connection(redis_url) as connection:
        channel = connection.channel()
        producer = connection.Producer(channel)
        producer.publish(
            {"ids": [2]}, exchange=queue.exchange, routing_key="broker-ack", declare=[queue]
        )
        message = queue(channel).get(no_ack=False)
        assert message is not None
        channel.connection.client = None
        channel._pool = None
        with caplog.at_level(logging.WARNING, logger="workers.broker"):
            message.ack()  # raised AttributeError before, which Celery finds unrecoverable
        assert "acknowledgement left to the visibility timeout" in caplog.text
        assert channel.qos._delivered == {}
    client = redis.Redis.from_url(redis_url)
    assert client.hlen("unacked") == 1
