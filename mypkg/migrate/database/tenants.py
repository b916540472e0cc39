"""A tenant's schema (PostgreSQL) or database (MySQL, MariaDB): made when an upgrade needs
it, never by a reading command, and named only as a quoted identifier.

The search path that keeps every statement inside the tenant is set where engines are made
(:func:`.connections.create_engine`); this module is the rest of a tenant's life.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .connections import create_engine, database_errors

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

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
