"""Celery tasks, each a thin wrapper: ids in, one unit of work, one call into proctoring/."""
