"""The machine's PostgreSQL and Redis, shared by the tests and the benchmarks: a database of
one's own on each, migrated by the migrations (never ``create_all``)."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from pathlib import Path
from typing import IO

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from proctoring.db import make_engine
from proctoring.schema import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "PROCTORQ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PROCTORQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("PROCTORQ_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def create_postgres_database() -> str:
    """A fresh, empty database on the local server; returns its URL."""
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool)
    name = f"proctorq_test_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrated_database(backend: str, tmp_dir: str = "") -> str:
    url = (
        f"sqlite:///{tmp_dir}/proctorq-{uuid.uuid4().hex[:8]}.sqlite3"
        if backend == "sqlite"
        else create_postgres_database()
    )
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


_held: dict[int, tuple[int, IO[str]]] = {}  # offset -> (database number, its locked file)


def redis_database(offset: int = 0) -> str:
    """A database number of the machine's Redis for this test run, apart from others'.

    Numbers 1 to 15 (0 is the benchmarks'). Each is claimed with a lock on a file for as
    long as this process lives, so two runs on one machine never share one; the kernel
    releases the lock when the process ends, however it ends.
    """
    if offset not in _held:
        taken = {number for number, _ in _held.values()}
        for step in range(15):
            number = 1 + (os.getpid() + offset + step) % 15
            if number in taken:
                continue
            file = (Path(tempfile.gettempdir()) / f"proctorq-test-redis-{number}.lock").open("a")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                continue
            _held[offset] = (number, file)
            break
        else:
            raise RuntimeError("every Redis database 1-15 is held by another test run")
    return REDIS_URL.rsplit("/", 1)[0] + f"/{_held[offset][0]}"
