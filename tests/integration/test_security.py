"""Nothing personal or secret on the broker or in a log line, read off a real run."""

from __future__ import annotations

import threading

import httpx
import redis

from proctoring.models import Attempt
from tests.support import scenario
from tests.support.environment import JWT_SECRET, PROVIDERS
from tests.support.processes import Stack, wait_until
from tests.support.tokens import bearer, signed

NAME = "learner-with-a-distinctive-name"
ADDRESS = "very.private.address@learners.example.test"


def test_no_address_name_token_or_secret_on_the_broker_or_in_logs(pipeline: Stack) -> None:
    # No read timeout: the watcher may wait long for a command while processes start.
    client = redis.Redis.from_url(pipeline.broker_url, socket_timeout=None)
    seen: list[str] = []
    stop = threading.Event()

    def monitor() -> None:
        with client.monitor() as commands:
            for command in commands.listen():
                seen.append(str(command.get("command", "")))
                if stop.is_set():
                    return

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    pipeline.start_worker()
    _, url = pipeline.start_api()
    _, _, (seat,) = scenario.course(pipeline)
    api = httpx.Client(base_url=url, timeout=30)
    token = bearer(seat.user_id, username=NAME, email=ADDRESS)
    for to in ("started", "submitted"):
        posted = api.post(
            f"/v1/attempts/{seat.attempt_id}/transitions", headers=token, json={"to_status": to}
        )
        assert posted.status_code == 202, posted.text
        api.get(
            f"/v1/transitions/{posted.json()['transition_id']}", params={"wait": 20}, headers=token
        )
    with pipeline.uow() as session:
        code = session.get_one(Attempt, seat.attempt_id).attempt_code
    raw, headers = signed("acme", {"attempt_code": code, "status": "passed"})
    assert api.post("/v1/providers/acme/reviews", content=raw, headers=headers).status_code == 202
    wait_until(lambda: scenario.nothing_pending(pipeline), timeout=180, what="every follow-up")
    stop.set()
    client.ping()  # one more command, so the monitor loop sees the stop
    watcher.join(5)

    published = [c for c in seen if "LPUSH" in c or "PUBLISH" in c]
    assert any("proctorq.apply_transitions" in c for c in published)
    assert any("proctorq.send_status_email" in c for c in published)
    secrets = [
        NAME,
        ADDRESS,
        token["Authorization"].split()[1],
        JWT_SECRET,
        *(s for p in PROVIDERS.values() for s in p.get("secrets", ())),  # type: ignore[attr-defined]
        *(s for p in PROVIDERS.values() for s in p.get("callback_clients", {}).values()),  # type: ignore[attr-defined]
    ]
    for secret in secrets:
        assert not any(secret in c for c in seen), f"{secret[:12]}… went over the broker"
        assert secret not in pipeline.logs_full(), f"{secret[:12]}… is in a log"
