"""The base task: unit of work, delivery count, retries and logging context, in one place."""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy.exc
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError

from config import get_settings
from config.logging import log_context
from proctoring.db import UnitOfWork
from proctoring.ledger import Ledger
from proctoring.outbox import FollowUpResult
from workers.resources import unit_of_work
from workers.routing import MAX_RETRY_DELAY_SECONDS

log = logging.getLogger(__name__)

# Transient errors: the database or broker is away for a moment, a deadlock was broken, a
# task ran out of time. Trying again later is the whole remedy.
#
# IntegrityError is among them on purpose: the domain resolves the races it knows with
# savepoints, and one it does not know (two transactions inserting the same unique row) is
# settled by the time the retry runs. The delivery count bounds the rare one that persists.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.IntegrityError,
    BrokerError,
    ConnectionError,
    TimeoutError,
    SoftTimeLimitExceeded,
)

# A message for a row's next try arrives this much after it: never early, so the row is due.
DUE_MARGIN_SECONDS = 0.05


def backoff(retries: int, base: float = 1.0, cap: float = MAX_RETRY_DELAY_SECONDS) -> float:
    """Exponential, capped, with full jitter: retries after an outage do not arrive together."""
    return random.uniform(0, min(cap, base * 2**retries))  # noqa: S311 - not cryptographic


class ProctorqTask(Task):  # type: ignore[misc]
    """What every task does around its function; a task says how its function meets the
    database by its base, ``OneTransactionTask`` or ``OwnTransactionsTask``.

    A message carries a list of ids (or nothing, for periodic work); the function is declared
    with what the base hands it first, then those ids. Sending checks the arguments against
    that message signature.

    - With a ``ledger``, the delivery of the ids is counted in it, in its own commit, before
      the work: a message that keeps failing or keeps killing its worker ends `failed` after
      ``max_deliveries`` with its reason, which Celery alone cannot do after a lost worker.
    - Transient errors are retried with backoff; any other error fails the ids at once, with
      the error as their detail, for an operator to look at and replay.
    """

    abstract = True
    max_retries = 25
    typing = True
    # The table the ids name: its rows' deliveries are counted and failures recorded there.
    ledger: Ledger | None = None
    # A task whose work also takes up other waiting rows (a batch that drains) runs even when
    # none of its own ids is left to work on: it does what is waiting instead.
    drains = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Celery builds a class per task and checks sent arguments against the function's
        # signature; a message carries only what follows the session or unit of work.
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.__header__ = staticmethod(_message_signature(cls.__dict__["run"]))

    def __call__(self, ids: Sequence[int] | None = None) -> Any:
        with log_context(task=self.name, ids=_show(ids)):
            return self._run_counted(None if ids is None else list(ids))

    def work(self, uow: UnitOfWork, ids: list[int] | None) -> Any:
        raise NotImplementedError("a task's base says how it meets the database")

    def _run_counted(self, ids: list[int] | None) -> Any:
        uow = unit_of_work()
        try:
            if ids is not None and self.ledger is not None:
                with uow.autocommit() as connection:
                    ids = self.ledger.count_delivery(connection, ids, get_settings().max_deliveries)
                if not ids and not self.drains:
                    return None
            result = self.work(uow, ids)
        except TRANSIENT_ERRORS as exc:
            delay = backoff(self.request.retries)
            log.warning("%s; trying again in %.1f s", _describe(exc), delay)
            raise self.retry(
                exc=exc, countdown=delay, args=[ids] if ids is not None else None
            ) from exc
        except Exception as exc:
            self._fail(ids, exc)
            raise
        if isinstance(result, FollowUpResult) and result.retry_ids:
            self._try_again_later(result)
        return _summary(result)

    def _try_again_later(self, result: FollowUpResult) -> None:
        """One message for the moment the postponed rows are all due again. Their next try
        is recorded on the rows: should this message be lost, the relay publishes them then."""
        delay = result.retry_after or 0.0
        log.info("%d to try again in %.1f s", len(result.retry_ids), delay)
        if delay > MAX_RETRY_DELAY_SECONDS:
            return  # a long pause asked for by the dependency: the relay publishes it then
        try:
            self.apply_async(args=[result.retry_ids], countdown=delay + DUE_MARGIN_SECONDS)
        except BrokerError:
            log.warning("the broker did not take the retry; the relay publishes it when due")

    def _fail(self, ids: list[int] | None, exc: Exception) -> None:
        """An error that will not pass by itself: isolate it, then record it."""
        if not ids or self.ledger is None:
            log.exception("%s", _describe(exc))
            return
        if len(ids) > 1:
            # One of these ids may be the culprit: each goes again on its own, so the others
            # are not failed with it.
            log.warning("%s; sending the %d ids again one by one", _describe(exc), len(ids))
            for one in ids:
                self.apply_async(args=[[one]])
            return
        log.exception("%s; giving up on id %s", _describe(exc), ids[0])
        with unit_of_work()() as session:
            self.ledger.fail(session, ids, _describe(exc))


class OneTransactionTask(ProctorqTask):
    """Runs its function in one transaction: ``fn(session, ids)``, or ``fn(session)``.

    Commit on success, roll back on error, publish what the work recorded after the commit.
    """

    abstract = True

    def work(self, uow: UnitOfWork, ids: list[int] | None) -> Any:
        with uow() as session:
            return self.run(session) if ids is None else self.run(session, ids)


class OwnTransactionsTask(ProctorqTask):
    """Hands its function the unit of work, which opens its own transactions:
    ``fn(uow, ids)``. For work that must commit between its steps (an e-mail is claimed,
    sent, then recorded; credit is written before the LMS is called)."""

    abstract = True

    def work(self, uow: UnitOfWork, ids: list[int] | None) -> Any:
        return self.run(uow) if ids is None else self.run(uow, ids)


def _message_signature(run: Any) -> Callable[..., None]:
    """A check of sent arguments against the function's signature without its first
    parameter (the session or unit of work the base task hands it)."""
    function = run.__func__ if isinstance(run, staticmethod) else run
    signature = inspect.signature(function)
    message = signature.replace(parameters=list(signature.parameters.values())[1:])

    def check(*args: Any, **kwargs: Any) -> None:
        message.bind(*args, **kwargs)

    return check


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]


def _show(ids: Sequence[int] | None) -> str:
    if ids is None:
        return "-"
    shown = ",".join(str(i) for i in list(ids)[:10])
    return shown + (f",…(+{len(ids) - 10})" if len(ids) > 10 else "")


def _summary(result: Any) -> Any:
    if isinstance(result, FollowUpResult):
        return {"done": len(result.done), "failed": len(result.failed)}
    if isinstance(result, list):
        return len(result)
    return result
