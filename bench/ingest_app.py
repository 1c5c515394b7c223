"""The API as `proctorq api` serves it, plus the baseline: a bare route that validates the
same body and answers 202, recording and publishing nothing."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.schemas import TransitionAccepted, TransitionCreate


def app_factory() -> FastAPI:
    app = create_app()

    @app.post("/bench/bare/{attempt_id}/transitions", status_code=202)
    async def bare(attempt_id: int, request: TransitionCreate) -> TransitionAccepted:
        return TransitionAccepted(transition_id=attempt_id, state="pending")

    return app
