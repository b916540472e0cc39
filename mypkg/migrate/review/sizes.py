"""How big the tables a plan touches are, from the target's own catalog: what a lock on
them costs depends on it.

PostgreSQL: ``reltuples`` (the planner's estimate, kept by ANALYZE and autovacuum) and
``pg_total_relation_size``; a table never analyzed is counted when small, else its rows
are unknown. SQLite: counted, and its pages from ``dbstat`` where SQLite has it. MySQL,
MariaDB: ``information_schema.TABLES`` (InnoDB's estimate). Every read is bounded: a
table whose lock is not granted within ``lock_timeout`` is told unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..database import connections
from ..results import TableSize

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy.engine import Connection

    from ..database.target import Database

#: A PostgreSQL table never analyzed is counted exactly up to this size; past it, unknown.
COUNTED_UP_TO = 64 * 1024 * 1024


def table_sizes(db: Database, names: Collection[str], *, lock_timeout: float) -> dict[str, TableSize]:
    """Each of ``names`` that the database holds, sized; a name it lacks is left out."""
    if not names or db.file_missing():
        return {}
    with connections.connect(db, will_write=False) as connection:
        try:
            if db.is_postgresql:
                return _postgresql(connection, sorted(names), lock_timeout)
            if db.is_mysql:
                return _mysql(connection, sorted(names))
            return _sqlite(connection, sorted(names))
        finally:
            if connection.in_transaction():
                connection.rollback()


def _postgresql(connection: Connection, names: list[str], lock_timeout: float) -> dict[str, TableSize]:
    import sqlalchemy as sa

    # A size function and a count wait for a lock an ALTER may hold: bounded, in this
    # transaction only (SET LOCAL), whatever pooler sits between.
    connection.execute(sa.text(f"SET LOCAL lock_timeout = '{max(1, int(lock_timeout * 1000))}ms'"))
    found = {}
    rows = connection.execute(sa.text(
        "SELECT c.relname, c.reltuples::bigint, c.oid FROM pg_class c WHERE c.relkind IN ('r', 'p') "
        "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
        "AND c.relname = ANY(:names)"), {"names": names}).all()
    quote = connection.dialect.identifier_preparer.quote
    for name, estimate, oid in rows:
        # The oid compared with a column, never cast by the driver: asyncpg types $1 regclass there.
        size = _bounded(connection, "SELECT pg_total_relation_size(c.oid) FROM pg_class c WHERE c.oid = :oid",
                        {"oid": oid})
        if estimate is not None and estimate >= 0:
            found[name] = TableSize(int(estimate), size, estimated=True)
            continue
        small = size is not None and size <= COUNTED_UP_TO
        counted = _bounded(connection, f"SELECT count(*) FROM {quote(name)}") if small else None
        found[name] = TableSize(counted, size)
    return found


def _bounded(connection: Connection, sql: str, parameters: dict[str, Any] | None = None) -> int | None:
    """One number, or None when its lock was not granted in time (the read goes on)."""
    import sqlalchemy as sa

    savepoint = connection.begin_nested()
    try:
        value = connection.execute(sa.text(sql), parameters or {}).scalar()
    except sa.exc.OperationalError as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) != "55P03":  # lock_not_available
            raise
        savepoint.rollback()
        return None
    savepoint.commit()
    return None if value is None else int(value)


def _sqlite(connection: Connection, names: list[str]) -> dict[str, TableSize]:
    import sqlalchemy as sa

    present = {name for (name,) in connection.execute(sa.text(
        "SELECT name FROM sqlite_master WHERE type = 'table'")).all()}
    quote = connection.dialect.identifier_preparer.quote
    found = {}
    for name in names:
        if name not in present:
            continue
        rows = connection.execute(sa.text(f"SELECT count(*) FROM {quote(name)}")).scalar()
        try:  # the table and its indexes; dbstat is compiled into most SQLite builds, not all
            size = connection.execute(sa.text(
                "SELECT sum(pgsize) FROM dbstat WHERE name = :name OR name IN "
                "(SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :name)"), {"name": name}).scalar()
        except sa.exc.OperationalError:
            size = None
        found[name] = TableSize(int(rows or 0), None if size is None else int(size))
    return found


def _mysql(connection: Connection, names: list[str]) -> dict[str, TableSize]:
    import sqlalchemy as sa

    rows = connection.execute(sa.text(
        "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names").bindparams(
            sa.bindparam("names", expanding=True)), {"names": names}).all()
    return {name: TableSize(None if count is None else int(count), None if size is None else int(size),
                            estimated=True) for name, count, size in rows}
