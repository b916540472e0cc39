"""Safe baseline: before ``stamp`` records a revision, check the schema really is that revision's.

A scratch copy of the schema at that revision is built by running the shipped
migrations into an empty place of the same dialect (a temporary SQLite file; a
temporary PostgreSQL schema in the same database, dropped afterwards), reflected, and
compared with the real database by Alembic's autogenerate compare.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from . import connections, scripts
from .compare import differences as compare_with
from .identity import SCRATCH_PREFIX
from .ledger import RUNNER_TABLES

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection


def _upgrade_into(connection: Connection, revision: str) -> None:
    from alembic import command

    if revision != "base":
        command.upgrade(scripts.make_config(connection=connection), revision)
    if connection.in_transaction():
        connection.commit()


@contextlib.contextmanager
def _sqlite_scratch(revision: str) -> Iterator[sa.MetaData]:
    import sqlalchemy as sa

    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}baseline-") as tmp:
        engine = connections.create_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}", for_migrations=True)
        try:
            with engine.connect() as scratch:
                _upgrade_into(scratch, revision)
                reflected = sa.MetaData()
                reflected.reflect(scratch)
            yield reflected
        finally:
            engine.dispose()


@contextlib.contextmanager
def _postgresql_scratch(connection: Connection, revision: str) -> Iterator[sa.MetaData]:
    import sqlalchemy as sa

    schema = f"{SCRATCH_PREFIX}baseline_{uuid.uuid4().hex[:12]}"
    engine = connections.create_engine(connection.engine.url, for_migrations=True)
    try:
        with engine.connect() as scratch:
            scratch.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            scratch.execute(sa.text(f'SET search_path TO "{schema}"'))
            scratch.commit()
            try:
                _upgrade_into(scratch, revision)
                in_schema = sa.MetaData()
                in_schema.reflect(scratch, schema=schema)
                # Compared as if in the default schema, where the real tables are.
                reflected = sa.MetaData()
                for table in in_schema.sorted_tables:
                    table.to_metadata(
                        reflected, schema=None, referred_schema_fn=lambda *_args: sa.schema.BLANK_SCHEMA
                    )
                yield reflected
            finally:
                if scratch.in_transaction():
                    scratch.rollback()
                scratch.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                scratch.commit()
    finally:
        engine.dispose()


def differences(connection: Connection, revision: str) -> list[str]:
    """How the database's schema differs from the schema ``revision`` builds; [] if equal."""
    scratch = (
        _postgresql_scratch(connection, revision)
        if connection.dialect.name == "postgresql"
        else _sqlite_scratch(revision)
    )
    with scratch as expected:
        for name in RUNNER_TABLES:
            if name in expected.tables:
                expected.remove(expected.tables[name])
        return compare_with(connection, expected)
