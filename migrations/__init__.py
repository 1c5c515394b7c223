"""Alembic migrations of proctorq's schema; `proctorq migrate` applies them."""
