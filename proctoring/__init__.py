"""The domain: models, the status table, and every rule of applying a transition.

Plain functions taking a SQLAlchemy session; nothing here imports Celery or FastAPI, so the
same code runs from a task, a route, a test or a shell.
"""
