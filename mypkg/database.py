"""Engines and connections: SQLite made transactional, failures made readable."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MigrateError
from .settings import mask

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for memory databases and other dialects."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


def check_sqlite_file(url: URL, *, will_write: bool) -> None:
    """Fail early, with a clear message, where SQLite would fail late and vaguely.

    :raises MigrateError: the directory is missing, or the file is not a SQLite database,
        or (when the command writes) the file or its directory is read-only.
    """
    path = sqlite_path(url)
    if path is None:
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise MigrateError(f"directory {directory} does not exist (database {mask(url)})")
    if path.exists():
        with path.open("rb") as handle:
            header = handle.read(16)
        if header and header != b"SQLite format 3\x00":
            raise MigrateError(f"{path} is not a SQLite database")
        if will_write and not os.access(path, os.W_OK):
            raise MigrateError(f"{path} is read-only: cannot migrate it")
    elif will_write and not os.access(directory, os.W_OK):
        raise MigrateError(f"directory {directory} is read-only: cannot create {path.name}")


def _make_sqlite_transactional(engine: Engine, *, foreign_keys: bool) -> None:
    """SQLAlchemy's pysqlite recipe: SQLite DDL runs inside real transactions.

    pysqlite by default commits before DDL, so a revision's CREATE TABLE and its
    alembic_version update would be committed apart and a failure in between would
    leave the schema ahead of the recorded revision.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        # Must be set outside a transaction: SQLite ignores it inside one.
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def create_engine(url: str | URL, *, for_migrations: bool = False, **kwargs: Any) -> Engine:
    """An engine for mypkg's schema.

    On SQLite, DDL is transactional and foreign keys are enforced. Migration engines
    switch enforcement off instead, because batch mode drops and recreates tables that
    others reference; each revision is then checked with ``PRAGMA foreign_key_check``
    before it commits (see ``env.py``).
    """
    import sqlalchemy

    from .settings import parse_url

    parsed = parse_url(url) if isinstance(url, str) else url
    engine = sqlalchemy.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _make_sqlite_transactional(engine, foreign_keys=not for_migrations)
    return engine


def first_line(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and background links."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0]


@contextlib.contextmanager
def database_errors(url: URL) -> Iterator[None]:
    """Turn driver and SQLAlchemy failures into one-line :class:`MigrateError` messages."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    try:
        yield
    except MigrateError:
        raise
    except DBAPIError as exc:
        message = first_line(exc)
        if exc.connection_invalidated or "connect" in message.lower():
            raise MigrateError(f"cannot connect to {mask(url)}: {message}") from exc
        if "not a database" in message:
            raise MigrateError(f"{mask(url)} is not a SQLite database") from exc
        raise MigrateError(f"{mask(url)}: {message}") from exc
    except SQLAlchemyError as exc:
        raise MigrateError(f"{mask(url)}: {first_line(exc)}") from exc
