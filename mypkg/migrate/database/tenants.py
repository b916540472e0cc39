"""A tenant's schema (PostgreSQL) or database (MySQL, MariaDB): made when an upgrade needs
it, never by a reading command, and named only as a quoted identifier; a scratch database
for the checks that build a revision's schema beside the target's.

The search path that keeps every statement inside the tenant is set where engines are made
(:func:`.connections.create_engine`); this module is the rest of a tenant's life.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .connections import create_engine, database_errors

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import URL, Connection

    from .target import Database


def quote_identifier(connection_or_engine: Any, name: str) -> str:
    """``name`` as a quoted identifier of that dialect, whatever it holds (quotes,
    semicolons): identifiers from input are quoted, never pasted."""
    return connection_or_engine.dialect.identifier_preparer.quote_identifier(name)


def create_schema(connection: Connection, db: Database) -> None:
    """PostgreSQL: create the tenant's schema if missing (committed), under the migration
    lock: two ``CREATE SCHEMA IF NOT EXISTS`` at once can still collide. Checked first, so
    a role without CREATE on the database migrates a schema made for it."""
    from sqlalchemy import text

    if db.schema is None or not db.is_postgresql:
        return
    found = connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": db.schema}).first()
    if found is None:
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(connection, db.schema)}")
    connection.commit()


def create_database(db: Database) -> None:
    """MySQL, MariaDB: create the tenant's database if missing, before connecting to it
    (``IF NOT EXISTS`` is safe there beside another migrator's)."""
    if db.schema is not None and db.is_mysql:
        _on_the_server(db, create=True)


def missing(db: Database) -> bool:
    """The SQLite file, or a MySQL tenant's database, is not there: a reading command
    answers "empty" without creating it. (A PostgreSQL tenant's missing schema reads as
    empty on its own connection: no version table there.)"""
    if db.file_missing():
        return True
    return db.schema is not None and db.is_mysql and not _on_the_server(db, create=False)


def _on_the_server(db: Database, *, create: bool) -> bool:
    """MySQL: whether the tenant's database exists, on a connection to no database;
    with ``create``, create it if not. Returns whether it existed."""
    engine = create_engine(db.url._replace(database=None))  # set() takes None as "keep"
    try:
        with database_errors(db), engine.connect() as connection:
            exists = connection.exec_driver_sql(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (db.schema,)).first() is not None
            if create and not exists:
                connection.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(connection, db.schema)}")
            connection.commit()
            return exists
    finally:
        engine.dispose()


@contextlib.contextmanager
def scratch_database(db: Database, name: str) -> Iterator[URL | None]:
    """PostgreSQL: a database of its own on ``db``'s server for scratch work (``plan``,
    ``drift``), holding the extensions ``db``'s database has, dropped afterwards; None where
    it cannot be made (no CREATEDB, an extension the role cannot create, a pooler that does
    not route to it): the caller falls back to a scratch schema.

    Better than a schema beside the real tables: nothing unqualified can reach them, and an
    extension the target has in ``public`` (prefect's ``pg_trgm``) is there too."""
    from sqlalchemy.exc import DBAPIError

    url = db.url.set(database=name)
    engine = create_engine(db.url, schema=db.schema)
    made = False
    try:
        with engine.connect() as connection:
            extensions = [row[0] for row in connection.exec_driver_sql(
                "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY extname")]
            connection.rollback()
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql(f"CREATE DATABASE {quote_identifier(connection, name)}")
            made = True
        scratch = create_engine(url)
        try:
            with scratch.connect() as connection:
                for extension in extensions:
                    connection.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {quote_identifier(connection, extension)}")
                connection.commit()
        finally:
            scratch.dispose()
    except DBAPIError:
        url = None  # type: ignore[assignment]
    try:
        yield url
    finally:
        if made:
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                force = " WITH (FORCE)" if connection.dialect.server_version_info >= (13,) else ""
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote_identifier(connection, name)}{force}")
        engine.dispose()
