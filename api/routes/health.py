"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.schemas import Health, Readiness
from proctoring.db import UnitOfWork

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Alive")
async def healthz() -> Health:
    return Health()


def _database_ok(uow: UnitOfWork) -> bool:
    try:
        with uow() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _broker_ok(request: Request) -> bool:
    app = request.app.state.celery
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        return False
    return True


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database or broker is unreachable."}},
    summary="Database and broker reachable",
)
def readyz(request: Request) -> JSONResponse:
    readiness = Readiness(
        database="ok" if _database_ok(request.app.state.uow) else "unreachable",
        broker="ok" if _broker_ok(request) else "unreachable",
    )
    ready = readiness.database == "ok" and readiness.broker == "ok"
    return JSONResponse(readiness.model_dump(), status_code=200 if ready else 503)
