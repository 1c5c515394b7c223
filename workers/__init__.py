"""The Celery app, its base task, the publisher, and the operators' command line."""
