"""Checks: lint, pytest-alembic and the stairway."""
