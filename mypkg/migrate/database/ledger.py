"""The ledger: one row per revision applied, reverted, stamped or failed.

Alembic's ``alembic_version`` holds only where a database is now. The ledger, a table
the runner creates (never the shipped revisions, so it exists whatever revision a
database is at), records the history Flyway and Liquibase keep: which revision, which
way, the sha256 of the script as shipped, the package version, UTC start and finish,
duration and outcome. A row for an applied or reverted revision is written in that
revision's own transaction, so it commits or rolls back with it; a failure is written
after the rollback, in a transaction of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import MigrateError
from ..identity import LEASE_TABLE, LEDGER_TABLE, VERSION_TABLE
from ..results import BACKFILLING, CHECKSUM_OUTCOMES, LedgerRow

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

TABLE = LEDGER_TABLE
#: Tables the runner owns: never compared with the models, never dropped by revisions.
RUNNER_TABLES = frozenset({TABLE, VERSION_TABLE, LEASE_TABLE})


_table: sa.Table | None = None


def include_name(name: str | None, type_: str, _parents: Any) -> bool:
    """Alembic's ``include_name`` hook: leave the runner's own tables out, and the installed
    plugins' (their own revisions build them: docs/plugins.md)."""
    if type_ != "table":
        return True
    from ..history.plugins import installed, tables

    return name not in RUNNER_TABLES and not (installed() and name in tables())


def existing_tables(connection: Connection) -> list[str]:
    """Tables of the database (its default schema) other than the runner's own."""
    import sqlalchemy as sa

    from .connections import tenant_schema

    found = sorted(set(sa.inspect(connection).get_table_names(schema=tenant_schema(connection))) - RUNNER_TABLES)
    if connection.in_transaction():
        connection.commit()
    return found


def is_ours(connection: Connection) -> bool:
    """The version table or the ledger exists: migrated before (if to base since)."""
    import sqlalchemy as sa

    from .connections import tenant_schema

    inspector = sa.inspect(connection)
    found = any(inspector.has_table(name, schema=tenant_schema(connection)) for name in RUNNER_TABLES)
    if connection.in_transaction():
        connection.commit()
    return found


def table() -> sa.Table:
    global _table
    if _table is None:
        import sqlalchemy as sa

        _table = sa.Table(
            TABLE,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("revision", sa.String(64), nullable=False),
            sa.Column("direction", sa.String(16), nullable=False),
            sa.Column("checksum", sa.String(64)),
            sa.Column("package_version", sa.String(64), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("duration_ms", sa.Float, nullable=False),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("detail", sa.Text),
            # Added with plugins: ledgers created before get it from ensure().
            sa.Column("plugin", sa.String(64)),
        )
    return _table


def ensure(connection: Connection) -> None:
    """Create the ledger if missing: databases migrated before it existed get it now; a
    ledger from before plugins gets their column (under the migration lock, as here)."""
    if not has(connection):
        table().create(connection, checkfirst=False)
    elif not has_plugin_column(connection):
        column = table().c.plugin
        kind = column.type.compile(dialect=connection.dialect)
        connection.exec_driver_sql(f"ALTER TABLE {_qualified(connection)} ADD COLUMN {column.name} {kind}")
    connection.commit()


def has_plugin_column(connection: Connection) -> bool:
    import sqlalchemy as sa

    from .connections import tenant_schema

    columns = sa.inspect(connection).get_columns(TABLE, schema=tenant_schema(connection))
    return any(column["name"] == "plugin" for column in columns)


def _qualified(connection: Connection) -> str:
    from .connections import tenant_schema

    preparer = connection.dialect.identifier_preparer
    schema = tenant_schema(connection)
    return (f"{preparer.quote_schema(schema)}." if schema else "") + preparer.quote(TABLE)


def plugins_of(connection: Connection, revisions: Sequence[str]) -> dict[str, str]:
    """The plugin the ledger says shipped each of ``revisions`` (those it knows)."""
    if not revisions or not has(connection) or not has_plugin_column(connection):
        return {}
    import sqlalchemy as sa

    rows = table()
    found = connection.execute(
        sa.select(rows.c.revision, rows.c.plugin).where(rows.c.revision.in_(list(revisions)), rows.c.plugin.is_not(None))
    ).all()
    return {revision: plugin for revision, plugin in found}


def exists(connection: Connection) -> bool:
    """Whether the ledger exists (the read transaction is ended)."""
    found = has(connection)
    connection.commit()
    return found


def has(connection: Connection) -> bool:
    """Whether the ledger exists, read in the current transaction (a tenant's, by its
    qualified name: see :func:`.connections.tenant_schema`)."""
    import sqlalchemy as sa

    from .connections import tenant_schema

    return sa.inspect(connection).has_table(TABLE, schema=tenant_schema(connection))


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def write(
    connection: Connection,
    *,
    revision: str,
    direction: str,
    checksum: str | None,
    started_at: dt.datetime,
    outcome: str,
    detail: str | None = None,
    returning_server_pid: bool = False,
) -> int | None:
    """Insert one row in the connection's current transaction (the caller commits); its id
    where the driver tells it. With ``returning_server_pid``, on PostgreSQL, the server
    process that ran the INSERT instead (what the lock check needs, in the same round trip)."""
    from ..history.manifest import load
    from ..version import package_version

    finished = now()
    shipped = load()
    plugin = shipped.plugin(shipped.owner.get(revision, ""))
    values = (
        revision,
        direction,
        checksum,
        package_version() if plugin is None else plugin.version,
        stored(connection, started_at),
        stored(connection, finished),
        (finished - started_at).total_seconds() * 1000,
        outcome,
        detail,
        None if plugin is None else plugin.name,
    )
    # Straight to the driver's cursor, on the same connection and so in the same
    # transaction: written once per revision, where SQLAlchemy's statement machinery
    # would cost more than the INSERT itself.
    style = connection.dialect.paramstyle
    marks = [("?" if style == "qmark" else f"${n}" if style == "numeric_dollar" else "%s")
             for n in range(1, len(values) + 1)]
    statement = _INSERT.format(marks=", ".join(marks))
    server_pid = returning_server_pid and connection.dialect.name == "postgresql"
    if not connection.in_transaction():
        # Begun by SQLAlchemy, not implicitly by the driver's cursor: its "begin" listeners
        # (a tenant's search path, the SQLite BEGIN) must run first, and its commit() must
        # know there is something to commit.
        connection.begin()
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement + (" RETURNING pg_backend_pid()" if server_pid else ""), values)
        return cursor.fetchone()[0] if server_pid else getattr(cursor, "lastrowid", None)
    finally:
        cursor.close()


def delete(connection: Connection, row_id: int) -> None:
    """Remove one row, in the connection's current transaction."""
    connection.execute(table().delete().where(table().c.id == row_id))


def clear_backfills(connection: Connection, revision: str) -> None:
    """Remove ``revision``'s backfill progress rows, in the transaction that records the
    revision: once it commits, nothing of it is left to resume."""
    rows = table()
    connection.execute(rows.delete().where(rows.c.revision == revision, rows.c.outcome == BACKFILLING))


_INSERT = (
    f"INSERT INTO {TABLE} (revision, direction, checksum, package_version, started_at, "
    "finished_at, duration_ms, outcome, detail, plugin) VALUES ({marks})"
)


def stored(connection: Connection, moment: dt.datetime) -> dt.datetime | str:
    """A timestamp as SQLAlchemy's DateTime stores it: SQLite keeps naive UTC text."""
    if connection.dialect.name == "sqlite":
        return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def rows(connection: Connection) -> list[LedgerRow]:
    """Every row, oldest first; [] when the ledger does not exist yet."""
    if not exists(connection):
        return []
    import sqlalchemy as sa

    # A ledger from before plugins has no plugin column until the next upgrade adds it.
    columns = [c for c in table().c if c.name != "plugin" or has_plugin_column(connection)]
    try:
        result = connection.execute(sa.select(*columns).order_by(table().c.id)).mappings().all()
    except ValueError:  # SQLite: a timestamp edited by hand that SQLAlchemy cannot read back
        connection.rollback()
        raise MigrateError(_unreadable_timestamp(connection)) from None
    connection.commit()
    return [LedgerRow(**_utc(dict(row))) for row in result]


def _unreadable_timestamp(connection: Connection) -> str:
    """Which row and column hold what is not a timestamp, and the way out."""
    import sqlalchemy as sa

    ledger = table()
    for row in connection.execute(sa.select(ledger.c.id, sa.cast(ledger.c.started_at, sa.String),
                                            sa.cast(ledger.c.finished_at, sa.String))):
        for name, value in (("started_at", row[1]), ("finished_at", row[2])):
            try:
                dt.datetime.fromisoformat(str(value))
            except ValueError:
                connection.rollback()
                return (f"the ledger {LEDGER_TABLE}, row {row[0]}: {name} {value!r} is not a timestamp (edited by "
                        f"hand?); set it to one (YYYY-MM-DD HH:MM:SS, UTC) and run the command again")
    connection.rollback()
    return f"the ledger {LEDGER_TABLE} holds a timestamp that cannot be read (edited by hand?)"


def _utc(row: dict[str, Any]) -> dict[str, Any]:
    # SQLite returns naive datetimes; every timestamp written here is UTC.
    for key in ("started_at", "finished_at"):
        if row[key].tzinfo is None:
            row[key] = row[key].replace(tzinfo=dt.timezone.utc)
    return row


def recorded_checksums(connection: Connection) -> dict[str, str | None]:
    """For each revision, the checksum recorded when it was last applied, stamped or realigned."""
    if not exists(connection):
        return {}
    import sqlalchemy as sa

    # Not through rows(): the timestamps are not needed here, and one edited by hand must not
    # stop an upgrade.
    ledger = table()
    found = connection.execute(sa.select(ledger.c.revision, ledger.c.outcome, ledger.c.checksum)
                               .order_by(ledger.c.id)).all()
    connection.commit()
    recorded: dict[str, str | None] = {}
    for revision, outcome, checksum in found:
        if outcome in CHECKSUM_OUTCOMES:
            recorded[revision] = checksum
    return recorded
