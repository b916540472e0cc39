"""Engines and connections: SQLite made transactional, failures made readable."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MigrateError, UsageError
from .settings import busy_timeout as settings_busy_timeout
from .settings import connect_timeout

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from .target import Database


def check_sqlite_file(db: Database, *, will_write: bool) -> None:
    """Fail early, with a clear message, where SQLite would fail late and vaguely.

    :raises MigrateError: the directory is missing, or the file is not a SQLite database,
        or (when the command writes) the file or its directory is read-only.
    """
    path = db.sqlite_path
    if path is None:
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise MigrateError(f"directory {directory} does not exist (database {db.masked})")
    if will_write and db.url.query.get("mode") == "ro":
        raise UsageError(f"{db.masked} is opened read-only (mode=ro): this command writes; drop mode=ro")
    if path.is_dir():
        raise MigrateError(f"{path} is a directory, not a SQLite database file (database {db.masked})")
    if path.exists():
        with path.open("rb") as handle:
            header = handle.read(16)
        if header and header != b"SQLite format 3\x00":
            raise MigrateError(f"{path} is not a SQLite database")
        if will_write and not os.access(path, os.W_OK):
            raise MigrateError(f"{path} is read-only: cannot migrate it")
    if will_write and not os.access(directory, os.W_OK):
        # SQLite writes its journal (and the lock file) beside the database.
        raise MigrateError(f"directory {directory} is read-only: cannot write {path.name} and its journal there")


def _make_sqlite_transactional(engine: Engine, *, foreign_keys: bool, immediate: bool) -> None:
    """SQLAlchemy's pysqlite recipe: SQLite DDL runs inside real transactions.

    pysqlite by default commits before DDL, so a revision's CREATE TABLE and its
    alembic_version update would be committed apart and a failure in between would
    leave the schema ahead of the recorded revision.

    With ``immediate``, the writer's transactions take SQLite's write lock when they begin
    (``BEGIN IMMEDIATE``): a plain ``BEGIN`` reads first and must later upgrade its read
    lock to a write lock, which fails at once, busy timeout or not, when an application
    wrote in between (always in WAL mode). Taking it first, the busy timeout applies.
    The writer is the connection :func:`connect` hands out; any other connection of the
    engine (a revision reading through ``op.get_bind().engine``, as zenml's first does)
    begins a plain ``BEGIN``: a reader beside the writer, where an immediate one would
    queue behind the writer's own lock until the busy timeout.
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
        # Inside Alembic's autocommit block each statement commits on its own (a
        # backfill's batches begin their own transactions): no BEGIN then.
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            # Leaving an autocommit block, SQLAlchemy puts pysqlite back in its legacy mode
            # (implicit BEGINs of its own): we emit every BEGIN, so switch that off again.
            connection.connection.dbapi_connection.isolation_level = None
            writer = immediate and connection.info.get(_WRITER, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def create_engine(
    url: str | URL,
    *,
    for_migrations: bool = False,
    immediate: bool = False,
    busy_timeout: float | None = None,
    schema: str | None = None,
    **kwargs: Any,
) -> Engine:
    """An engine for the schema.

    On SQLite, DDL is transactional and foreign keys are enforced. Migration engines
    switch enforcement off instead, because batch mode drops and recreates tables that
    others reference; each revision is then checked with ``PRAGMA foreign_key_check``
    before it commits (see :mod:`.environment`). ``immediate`` and ``busy_timeout``
    (seconds to wait for another connection's lock; default ``$MYPKG_BUSY_TIMEOUT``, else
    30): see :func:`connect`. ``schema``: PostgreSQL, a tenant's schema (see
    :func:`_search_path`); MySQL names it as the URL's database instead.
    """
    import sqlalchemy

    from .settings import parse_url

    parsed = parse_url(url) if isinstance(url, str) else url
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:  # every SQLite engine waits the user's bound, plain alembic's and scratch ones too
        kwargs.setdefault("connect_args", {})["timeout"] = (
            settings_busy_timeout() if busy_timeout is None else busy_timeout)
    handshake_bound = []
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        connect_args = kwargs.setdefault("connect_args", {})
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = math.ceil(connect_timeout())
        if parsed.get_driver_name() == "pymysql":
            # PyMySQL's connect_timeout bounds the TCP connect only: a server that accepts
            # and never sends its greeting hangs the client for ever. Reads and writes are
            # bounded until the connection is made, then unbounded again (lifted below): a
            # revision's statement may run for an hour.
            handshake_bound = [name for name in ("read_timeout", "write_timeout") if name not in parsed.query]
            for name in handshake_bound:
                connect_args[name] = connect_args.get("connect_timeout", connect_timeout())
    if parsed.get_backend_name() == "postgresql":
        import logging

        # psycopg logs its own clean-up failures after a lost connection ("error ignored
        # terminating ..."); the failure is already told in one line. Shown with -v.
        noisy = logging.getLogger("psycopg")
        if not any(isinstance(handler, logging.NullHandler) for handler in noisy.handlers):
            noisy.addHandler(logging.NullHandler())
        connect_args = kwargs.setdefault("connect_args", {})
        if parsed.get_driver_name() == "asyncpg":
            connect_args.setdefault("timeout", connect_timeout())  # asyncpg's own name for it
            if for_migrations:  # prepared statements do not survive a transaction pooler (as below)
                connect_args["statement_cache_size"] = 0
                parsed = parsed.update_query_dict({"prepared_statement_cache_size": "0"})
        elif "connect_timeout" not in parsed.query:
            # libpq counts whole seconds, at least 2.
            connect_args["connect_timeout"] = max(2, math.ceil(connect_timeout()))
        if parsed.get_driver_name() == "psycopg" and for_migrations:
            # No server-side prepared statements: a pooler may hand the next transaction
            # to another server session, where they do not exist.
            connect_args["prepare_threshold"] = None
    if getattr(parsed.get_dialect(), "is_async", False):
        # Its sync face: every call reaches the driver's coroutines through the greenlet
        # bridge the command runs in (:mod:`.bridge`).
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(parsed, **kwargs).sync_engine
    else:
        engine = sqlalchemy.create_engine(parsed, **kwargs)
    if handshake_bound:
        from sqlalchemy import event

        event.listen(engine, "connect", lambda dbapi, _record: _unbound(dbapi, handshake_bound))
    if sqlite:
        _make_sqlite_transactional(engine, foreign_keys=not for_migrations, immediate=immediate)
    if schema is not None and parsed.get_backend_name() == "postgresql":
        _search_path(engine, schema)
    return engine


def for_the_driver(connection: Connection, sql: str, params: dict[str, Any] | None = None) -> tuple[str, Any]:
    """``sql`` written with psycopg's ``%(name)s`` markers (``%%`` a percent sign), and its
    ``params``, as the connection's driver takes them straight: asyncpg numbers them
    (``$1``), and its percent signs are plain."""
    if connection.dialect.paramstyle != "numeric_dollar":
        return sql, params or {}
    names: list[str] = []

    def number(found: re.Match[str]) -> str:
        if found.group(0) == "%%":
            return "%"
        names.append(found.group(1))
        return f"${len(names)}"

    return re.sub(r"%\((\w+)\)s|%%", number, sql), tuple((params or {})[name] for name in names)


#: Marks the connection that migrates (its pool record's info): it begins BEGIN IMMEDIATE.
_WRITER = "sqlite_writer"  # a key of the pool record's own info dict, ours alone

#: Where a connection's pool record keeps its tenant's schema (:func:`tenant_schema`).
_TENANT = "tenant_schema"  # a key of the pool record's own info dict, ours alone


def tenant_schema(connection: Connection) -> str | None:
    """The tenant's schema this connection runs in (PostgreSQL), None otherwise.

    Lookups of the runner's own tables name it: unqualified, PostgreSQL checks the name's
    visibility in every schema that has a table of that name (60 ms a lookup beside 10,000
    tenants), where a qualified lookup is one index probe.
    """
    return connection.info.get(_TENANT) if connection.dialect.name == "postgresql" else None


def _search_path(engine: Engine, schema: str) -> None:
    """Every transaction runs with the tenant's schema first on the search path: scripts'
    unqualified names, the version table, the ledger and reflection all resolve there,
    never to a same-named table in ``public``. After it, the shared extensions schema
    (:func:`.settings.extensions_schema`), where the tenant's ``CREATE EXTENSION`` goes
    (:mod:`.extensions`): an extension's types and operator classes, the database's
    once, are every tenant's.

    ``SET LOCAL`` in each transaction, not a session ``SET``: through a transaction pooler
    a session setting would stay on a server connection that another client gets next.
    An autocommit block (``CREATE INDEX CONCURRENTLY``) has no transaction to scope it
    to: there the setting is the session's (the runner refuses transaction pooling before
    any revision runs, so that session is ours alone).
    """
    from sqlalchemy import event

    from . import extensions, settings

    quote = engine.dialect.identifier_preparer.quote_identifier
    shared = settings.extensions_schema()
    quoted = extensions.search_path(schema, quote)

    @event.listens_for(engine, "connect")
    def _default_schema(_dbapi_connection: Any, record: Any) -> None:
        # Set after SQLAlchemy's first-connect initialisation, which reads current_schema():
        # reflection and autogenerate take the tenant's schema as the default one.
        engine.dialect.default_schema_name = schema
        record.info[_TENANT] = schema

    @event.listens_for(engine, "begin")
    def _set(connection: Connection) -> None:
        scope = "" if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT" else "LOCAL "
        connection.exec_driver_sql(f"SET {scope}search_path TO {quoted}")

    if shared is not None:
        @event.listens_for(engine, "before_cursor_execute", retval=True)
        def _shared_extensions(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> Any:
            return extensions.placed(statement, shared, quote(shared)), parameters


def locked_by_another(exc: BaseException) -> bool:
    """SQLite gave up waiting for another connection's lock."""
    return "database is locked" in first_line(exc) or "database table is locked" in first_line(exc)


#: What "database is locked" means, for messages.
LOCKED_HINT = (
    "another connection held the database for longer than the busy timeout (an application "
    "writing, or a reader in a long transaction); stop it or retry with a longer --busy-timeout"
)


def first_line(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and background links."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0]


def error_name(exc: BaseException) -> str:
    """The driver's exception class name (``UndefinedTable``), else the exception's own."""
    return type(getattr(exc, "orig", None) or exc).__name__


@contextlib.contextmanager
def database_errors(db: Database) -> Iterator[None]:
    """Turn driver and SQLAlchemy failures into one-line :class:`MigrateError` messages."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    try:
        yield
    except MigrateError:
        raise
    except DBAPIError as exc:
        message = first_line(exc)
        if exc.connection_invalidated or "connect" in message.lower():
            raise MigrateError(f"cannot connect to {db.masked}: {message}") from exc
        if "not a database" in message:
            raise MigrateError(f"{db.masked} is not a SQLite database") from exc
        if locked_by_another(exc):
            raise MigrateError(f"{db.masked}: {message}: {LOCKED_HINT}; nothing was changed") from exc
        raise MigrateError(f"{db.masked}: {message}") from exc
    except SQLAlchemyError as exc:
        raise MigrateError(f"{db.masked}: {first_line(exc)}") from exc


@contextlib.contextmanager
def connect(
    db: Database, *, will_write: bool, busy_timeout: float | None = None
) -> Iterator[Connection]:
    """A connection for a command: the caller's own, or one made and closed here.

    A SQLite file engine handed in by the caller is replaced by one made
    transactional (see :func:`create_engine`) on the same file. On SQLite, a command
    that writes begins its transactions with ``BEGIN IMMEDIATE`` and waits up to
    ``busy_timeout`` seconds for other connections' locks.
    """
    from sqlalchemy.engine import Connection, Engine

    if isinstance(db.handed_in, Connection):
        yield db.handed_in
        return
    if isinstance(db.handed_in, Engine) and db.sqlite_path is None:
        with database_errors(db), db.handed_in.connect() as connection:
            yield connection
        return
    check_sqlite_file(db, will_write=will_write)
    engine = create_engine(db.url, for_migrations=True, immediate=will_write, busy_timeout=busy_timeout,
                           schema=db.schema)
    try:
        with database_errors(db), engine.connect() as connection:
            connection.info[_WRITER] = will_write
            yield connection
    finally:
        engine.dispose()


def read_current(connection: Connection) -> tuple[str, ...]:
    """The revisions in the version table; reads only, never creates the table."""
    heads = current_in_transaction(connection)
    # End the read transaction SQLAlchemy began: Alembic must start its own
    # per-revision transactions, or it treats them as external and commits nothing.
    connection.commit()
    return heads


def current_in_transaction(connection: Connection) -> tuple[str, ...]:
    """The version table as this transaction sees it (no commit, unlike read_current)."""
    from alembic.runtime.migration import MigrationContext

    opts = {"version_table_schema": tenant_schema(connection)}
    return tuple(MigrationContext.configure(connection, opts=opts).get_current_heads())


def _unbound(dbapi_connection: Any, names: list[str]) -> None:
    """PyMySQL reads its timeouts before every read and write (private attributes, stable
    from 1.1 to 2.2): set back to None, the socket blocks again for the statements."""
    for name in names:
        setattr(dbapi_connection, f"_{name}", None)


def _version_table() -> Any:
    import sqlalchemy as sa

    from ..identity import VERSION_TABLE

    return sa.table(VERSION_TABLE, sa.column("version_num"))


def complete_version_rows(connection: Connection, current: tuple[str, ...]) -> tuple[str, ...]:
    """Version rows written by hand as a unique prefix of a revision id (``1c63``): Alembic
    accepts one, then writes the next revision beside it, and with two rows every command
    fails. Each is rewritten to the full id (committed), under the migration lock."""
    from ..history.manifest import load

    known = load().by_id
    found = []
    for rev in current:
        matches = [full for full in known if full.startswith(rev)] if rev.strip() and rev not in known else []
        if len(matches) == 1:
            table = _version_table()
            connection.execute(table.update().where(table.c.version_num == rev).values(version_num=matches[0]))
            found.append(matches[0])
        else:
            found.append(rev)
    if tuple(found) != current:
        connection.commit()
    return tuple(found)


def drop_blank_version_rows(connection: Connection) -> None:
    """Remove version rows holding an empty id (a hand edit), in the current transaction."""
    import sqlalchemy as sa

    table = _version_table()
    if sa.inspect(connection).has_table(table.name, schema=tenant_schema(connection)):
        connection.execute(table.delete().where(sa.func.trim(table.c.version_num) == ""))
