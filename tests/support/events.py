"""An event receiver for tests: a real HTTP endpoint, and what a careful receiver checks of
what it was sent: every signature (with the standardwebhooks library), each webhook id taken
once, each attempt's events in order."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from standardwebhooks import Webhook

from tests.support.environment import webhook_secret
from tests.support.servers import HTTPEndpoint, Received

# The tolerance Standard Webhooks receivers give a message's timestamp.
TOLERANCE_SECONDS = 5 * 60

SECRET = webhook_secret("lms-events")


def receivers_setting(*endpoints: tuple[str, HTTPEndpoint]) -> str:
    """PROCTORQ_EVENT_WEBHOOKS for these (name, endpoint) pairs, all events, one secret."""
    return json.dumps(
        [
            {"name": name, "url": endpoint.url.replace("/credit", "/events"), "secret": SECRET}
            for name, endpoint in endpoints
        ]
    )


@dataclass(frozen=True)
class Event:
    webhook_id: str
    body: dict[str, Any]

    @property
    def number(self) -> int:
        """The outbox id in the webhook id: the order events were recorded in."""
        return int(self.webhook_id.rsplit("-", 1)[1])

    @property
    def attempt_id(self) -> int:
        return int(self.body["data"]["attempt_id"])


def verified(received: list[Received]) -> list[Event]:
    """Every POST as sent, in arrival order; fails on any signature that does not verify,
    or whose timestamp was more than five minutes off when it arrived (a receiver checks it
    then, and a run can outlast the tolerance)."""
    hook = Webhook(SECRET)
    events = []
    for post in received:
        webhook_id = post.headers["webhook-id"]
        sent_at = int(post.headers["webhook-timestamp"])
        assert abs(post.at - sent_at) <= TOLERANCE_SECONDS, f"{webhook_id} stale on arrival"
        # What Webhook.verify checks, on the clock of the arrival rather than of now.
        at = dt.datetime.fromtimestamp(sent_at, tz=dt.UTC)
        expected = hook.sign(webhook_id, at, post.raw.decode())
        given = post.headers["webhook-signature"].split()
        assert expected in given, f"{webhook_id}: the signature does not verify"
        events.append(Event(webhook_id, json.loads(post.raw)))
    return events


def taken_once(events: list[Event]) -> list[Event]:
    """What a receiver that remembers webhook ids acts on: the first arrival of each id.
    Repeats must carry the same body."""
    first: dict[str, Event] = {}
    for event in events:
        seen = first.setdefault(event.webhook_id, event)
        assert seen.body == event.body, f"{event.webhook_id} came back with another body"
    return list(first.values())


def out_of_order(events: list[Event]) -> list[str]:
    """Each attempt's events taken in an order other than recorded: should be none."""
    by_attempt: dict[int, list[int]] = defaultdict(list)
    for event in taken_once(events):
        by_attempt[event.attempt_id].append(event.number)
    return [
        f"attempt {attempt}: {numbers}"
        for attempt, numbers in by_attempt.items()
        if numbers != sorted(numbers)
    ]
