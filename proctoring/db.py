"""Engines, sessions and the unit of work: the one place where commits happen."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from proctoring.models import OutboxKind

log = logging.getLogger(__name__)


class WakeupKind(enum.StrEnum):
    """What a wake-up asks for: ``apply`` the requests of these transition ids, or carry out
    the follow-ups of these outbox ids, one member per outbox kind, spelled as it is."""

    apply = "apply"
    credit = OutboxKind.credit.value
    clear_credit = OutboxKind.clear_credit.value
    cascade = OutboxKind.cascade.value
    email = OutboxKind.email.value
    event = OutboxKind.event.value
    vendor = OutboxKind.vendor.value


@dataclass(frozen=True)
class Wakeup:
    """A message to send once the commit that recorded its row has happened."""

    kind: WakeupKind
    id: int


Publisher = Callable[[Sequence[Wakeup]], None]


def wake(session: Session, kind: WakeupKind | OutboxKind, ids: Sequence[int]) -> None:
    """Ask for a message per id after this session commits (never before: rule 1)."""
    # An outbox kind is the wake-up kind of the same name; an unknown one fails here, inside
    # the transaction, rather than in the publisher after the commit.
    wakeup_kind = WakeupKind(kind)
    session.info.setdefault("wakeups", []).extend(Wakeup(wakeup_kind, i) for i in ids)


def upsert_insert(bind: Session | Connection) -> Callable[..., Any]:
    """INSERT with ON CONFLICT for the backend of a session or connection (PostgreSQL or
    SQLite)."""
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    if dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def pending_wakeups(session: Session) -> list[Wakeup]:
    return list(session.info.get("wakeups", ()))


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the backend: SQLite serialises writers, PostgreSQL pools."""
    parsed = make_url(url)
    # Errors name the statement, not its values: those can be e-mail addresses, and error
    # texts end up in logs and in a failed request's detail.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)
        _serialise_sqlite_writers(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 5)
    return create_engine(url, **kwargs)


def _serialise_sqlite_writers(engine: Engine) -> None:
    # SQLite has no row locks. Every transaction starts with BEGIN IMMEDIATE, which takes the
    # database's write lock at once: this is how "one writer per attempt" holds on SQLite (one
    # writer at all), and it avoids the deadlock of two readers both upgrading to writers.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


class UnitOfWork:
    """Commit on success, roll back on error, then publish what the transaction recorded.

    Publishing happens after the commit and its failure is only logged: the rows are the truth
    and the sweeper publishes them again, so a broker outage delays work but loses none.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        publisher: Publisher | None = None,
        shared: Session | None = None,
    ) -> None:
        self._session_factory = session_factory
        self.publisher = publisher
        self._shared = shared

    def for_request(self) -> UnitOfWork:
        """A unit of work whose transactions all use one session (one pooled connection at a
        time) for the length of an HTTP request. ``session()`` opens its transaction without
        committing; the next ``with uow()`` continues and commits it. Close it at the end."""
        return UnitOfWork(self._session_factory, self.publisher, self._session_factory())

    @property
    def engine(self) -> Engine:
        engine: Engine = self._session_factory.kw["bind"]
        return engine

    def session(self) -> Session:
        assert self._shared is not None, "only a request's unit of work lends its session"
        return self._shared

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection for one statement that commits by itself (PostgreSQL): no BEGIN and
        COMMIT round trips. SQLite gets a short transaction instead (its writers are
        serialised by BEGIN IMMEDIATE)."""
        engine = self.engine
        if engine.dialect.name == "sqlite":
            with engine.begin() as connection:
                yield connection
            return
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection

    @contextmanager
    def __call__(self) -> Iterator[Session]:
        session = self._shared or self._session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            wakeups = session.info.pop("wakeups", [])
            if self._shared is None:
                session.close()
        self.publish(wakeups)

    def publish(self, wakeups: Sequence[Wakeup]) -> None:
        """Hand committed rows' wake-ups to the publisher; a failure is only logged."""
        if wakeups and self.publisher is not None:
            try:
                self.publisher(wakeups)
            except Exception:  # the sweeper publishes them again
                log.warning("publishing %d wake-ups failed; the sweeper will", len(wakeups))
