"""Bringing a database's schema up to date, and checking that models and migrations agree."""

from __future__ import annotations

import importlib.resources
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

from proctoring.models import Base


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(importlib.resources.files("migrations")))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")


def drift(connection: Connection) -> list[Any]:
    """What differs between the migrated schema and the models; empty when they agree."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))
