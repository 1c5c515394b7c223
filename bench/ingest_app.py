"""The API as `proctorq api` serves it, plus two baselines in the same app:

- a bare route that validates the same body and answers 202, recording and publishing
  nothing;
- a route that only publishes a Celery message (fire-and-forget, as a FastAPI app handing
  work to Celery usually does): no token, no access check, no row, nothing durable.
"""

from __future__ import annotations

from fastapi import FastAPI
from kombu import Queue

from api.app import create_app
from api.schemas import TransitionAccepted, TransitionCreate
from workers.routing import APPLY_TRANSITIONS

# Its own queue, which no worker reads: the benchmark counts the transitions queue alone.
PUBLISH_ONLY = Queue("bench-publish-only")


def app_factory() -> FastAPI:
    app = create_app()

    @app.post("/bench/bare/{attempt_id}/transitions", status_code=202)
    async def bare(attempt_id: int, request: TransitionCreate) -> TransitionAccepted:
        return TransitionAccepted(transition_id=attempt_id, state="pending")

    @app.post("/bench/publish/{attempt_id}/transitions", status_code=202)
    def publish(attempt_id: int, request: TransitionCreate) -> TransitionAccepted:
        app.state.celery.send_task(
            APPLY_TRANSITIONS, args=[[attempt_id]], queue=PUBLISH_ONLY, declare=[PUBLISH_ONLY]
        )
        return TransitionAccepted(transition_id=attempt_id, state="pending")

    return app
