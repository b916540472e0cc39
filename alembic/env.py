"""Alembic's environment, shared by ``alembic`` (from a source checkout) and
``mypkg-migrate`` (from an install). The configuration lives in
:mod:`mypkg.migrate.runtime.environment`, so both commands run the scripts the same way."""

from mypkg.migrate.runtime.environment import run_migrations

run_migrations()
