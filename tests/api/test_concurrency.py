"""Many requests of one caller at once, with fewer threads than requests: none waits on another.

The LMS sends all of its requests as one user. If a request held a lock on its caller's row
while it waited for a thread to go on, the requests queued behind that lock would hold every
thread, and the process would stop answering.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread
import httpx
import pytest

from api.app import create_app
from api.callers import known_users
from config import get_settings
from proctoring.db import UnitOfWork
from tests.support.api import World, new_id
from tests.support.tokens import bearer

CONCURRENT = 12
THREADS = 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_new_callers_burst_completes_with_two_threads(
    world: World, stack_parts: tuple[UnitOfWork, Any]
) -> None:
    targets = [world.new_attempt(exam=world.new_exam())["attempt_id"] for _ in range(CONCURRENT)]
    uow, celery = stack_parts
    known_users.forget()
    app = create_app(get_settings(), uow=uow, celery=celery)
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    lms = bearer(new_id(), staff=True)  # a user this database has never seen
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:

        async def relay(attempt_id: int) -> httpx.Response:
            return await client.post(
                f"/v1/attempts/{attempt_id}/transitions",
                headers=lms,
                json={"to_status": "started", "acting_for_learner": True},
            )

        answers = await asyncio.wait_for(
            asyncio.gather(*(relay(target) for target in targets)), timeout=60
        )
    assert [a.status_code for a in answers] == [202] * CONCURRENT, [a.text for a in answers]
