"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from proctoring.models import Base
from proctoring.schema import drift


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as connection:
        assert drift(connection) == []


def test_every_table_is_migrated(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_uniqueness_rules_are_constraints(engine: Engine) -> None:
    inspector = inspect(engine)
    unique = {
        table: {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
        | {tuple(i["column_names"]) for i in inspector.get_indexes(table) if i["unique"]}
        for table in (
            "exams",
            "attempts",
            "transitions",
            "reviews",
            "credit_requirements",
            "sent_emails",
            "attempt_history",
        )
    }
    assert ("course_id", "content_id") in unique["exams"]
    assert ("exam_id", "user_id") in unique["attempts"]
    assert ("attempt_code",) in unique["attempts"]
    assert ("source", "idempotency_key") in unique["transitions"]
    assert ("provider", "webhook_id") in unique["reviews"]
    assert ("user_id", "course_id", "namespace", "name") in unique["credit_requirements"]
    assert ("transition_id",) in unique["sent_emails"]
    assert ("transition_id",) in unique["attempt_history"]
