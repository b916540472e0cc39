"""pytest-alembic's fixtures, pointed at the shipped scripts and both dialects (db_url)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from mypkg.migrate.database import connections as database
from mypkg.migrate.history import scripts


@pytest.fixture
def alembic_config():  # noqa: ANN201
    return scripts.make_config()


@pytest.fixture
def alembic_engine(db_url: str) -> Iterator[Engine]:
    engine = database.create_engine(db_url, for_migrations=True)
    try:
        yield engine
    finally:
        engine.dispose()
