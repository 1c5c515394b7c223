"""Alembic environment: the database URL comes from the settings, the target from the models."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from config import get_settings
from proctoring.db import make_engine
from proctoring.models import Base, UTCDateTime

target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations stay free of our Python types: the zone-keeping wrapper is a plain column.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = make_engine(url)
    with engine.connect() as fresh:
        run(fresh)
    engine.dispose()
