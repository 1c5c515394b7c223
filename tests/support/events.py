"""An event receiver for tests: a real HTTP endpoint, and what a careful receiver checks of
what it was sent: every signature (with the standardwebhooks library), each webhook id taken
once, each attempt's events in order."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from standardwebhooks import Webhook

from tests.support.environment import webhook_secret
from tests.support.servers import HTTPEndpoint, Received

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
    """Every POST as sent, in arrival order; fails on any signature that does not verify."""
    hook = Webhook(SECRET)
    events = []
    for post in received:
        body = hook.verify(post.raw, post.headers)
        events.append(Event(post.headers["webhook-id"], body))
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
