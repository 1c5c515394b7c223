"""A ready process collects once and freezes what is alive: later collections walk only what
was made after (config/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import signals
from fastapi.testclient import TestClient

from api.app import create_app
from config import get_settings, heap
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from tests.support.databases import migrated_database


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_garbage_is_collected_and_the_living_are_frozen() -> None:
    cycle, alive = Node(), Node()
    cycle.other = cycle
    gone = weakref.ref(cycle)
    del cycle
    heap.settle()
    assert gone() is None  # collected first, not frozen forever
    assert gc.get_freeze_count() > 0
    assert not any(o is alive for o in gc.get_objects())  # out of the collector's sight


def test_every_worker_process_settles_once_ready() -> None:
    for signal in (signals.worker_ready, signals.worker_process_init):
        gc.unfreeze()
        signal.send(sender=None)
        assert gc.get_freeze_count() > 0, signal.name


def test_the_api_settles_at_startup(tmp_path: Path) -> None:
    engine = make_engine(migrated_database("sqlite", str(tmp_path)))
    with TestClient(create_app(get_settings(), uow=UnitOfWork(make_session_factory(engine)))):
        assert gc.get_freeze_count() > 0
    engine.dispose()
