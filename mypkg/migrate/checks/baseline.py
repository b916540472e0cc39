"""Safe baseline: before ``stamp`` records a revision, check the schema really is that revision's.

A scratch copy of the schema at that revision is built as an upgrade builds a new
database (through the newest checkpoint on the way) in an empty place of the same dialect
(a temporary SQLite file; a temporary PostgreSQL database holding the target's extensions,
else a schema in the target's; a MySQL database on the same server, dropped afterwards),
reflected, and compared with the real database by Alembic's autogenerate compare.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..database import connections
from ..database.ledger import RUNNER_TABLES
from ..errors import MigrateError, UsageError
from ..history import scripts
from ..identity import SCRATCH_PREFIX
from .compare import INDEX_DEFINITIONS, index_definitions
from .compare import differences as compare_with

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

    from ..database.target import Database
    from ..results import Drift


def _upgrade_into(connection: Connection, revision: str | tuple[str, ...]) -> None:
    from alembic import command

    for each in (revision,) if isinstance(revision, str) else revision:  # each head of several
        if each != "base":
            command.upgrade(scripts.make_config(connection=connection), each)
    if connection.in_transaction():
        connection.commit()


def _build_and_reflect(url: Any, revision: str | tuple[str, ...]) -> sa.MetaData:
    """Build ``revision``'s schema in the empty database at ``url`` as an upgrade builds a
    new database: through the newest checkpoint it passes, then the revisions after it (a
    history whose oldest scripts were retired, or no longer import, has no replay from
    base). The run is not the command's: no listener hears it."""
    import sqlalchemy as sa

    from .. import events
    from ..database.settings import DEFAULT_LOCK_TIMEOUT
    from ..database.target import resolve
    from ..runtime import runner

    with events.only():
        for each in (revision,) if isinstance(revision, str) else revision:  # each head of several
            if each != "base":
                runner.run("upgrade", resolve(url), each, on_applied=None, lock_timeout=DEFAULT_LOCK_TIMEOUT,
                           statement_lock_timeout=None, on_wait=None, use_checkpoints=True)
    engine = connections.create_engine(url, for_migrations=True)
    try:
        with engine.connect() as scratch:
            reflected = sa.MetaData()
            reflected.reflect(scratch)
            if scratch.dialect.name == "postgresql":
                reflected.info[INDEX_DEFINITIONS] = index_definitions(scratch)
        return reflected
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlite_scratch(revision: str | tuple[str, ...]) -> Iterator[sa.MetaData]:
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}baseline-") as tmp:
        yield _build_and_reflect(f"sqlite:///{Path(tmp) / 'scratch.db'}", revision)


@contextlib.contextmanager
def _postgresql_scratch(connection: Connection, revision: str | tuple[str, ...]) -> Iterator[sa.MetaData]:
    """A database of its own with the target's extensions (:func:`.tenants.scratch_database`),
    else a schema in the target's database."""
    from ..database.target import resolve
    from ..database.tenants import scratch_database

    name = f"{SCRATCH_PREFIX}baseline_{uuid.uuid4().hex[:12]}"
    with scratch_database(resolve(connection.engine.url), name) as url:
        if url is not None:
            yield _build_and_reflect(url, revision)
            return
    with _postgresql_scratch_schema(connection, revision) as reflected:
        yield reflected


@contextlib.contextmanager
def _postgresql_scratch_schema(connection: Connection, revision: str | tuple[str, ...]) -> Iterator[sa.MetaData]:
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
                reflected = sa.MetaData(info={INDEX_DEFINITIONS: index_definitions(scratch)})
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


@contextlib.contextmanager
def _mysql_scratch(connection: Connection, revision: str | tuple[str, ...]) -> Iterator[sa.MetaData]:
    """MySQL and MariaDB: a scratch database on the same server (dropped afterwards)."""
    name = f"{SCRATCH_PREFIX}baseline_{uuid.uuid4().hex[:12]}"
    connection.exec_driver_sql(f"CREATE DATABASE `{name}`")
    connection.commit()
    try:
        yield _build_and_reflect(connection.engine.url.set(database=name), revision)
    finally:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        connection.commit()


def differences(connection: Connection, revision: str | tuple[str, ...], *, against: str = "models") -> list[str]:
    """How the database's schema differs from the schema ``revision`` (or each of several
    heads) builds; [] if equal. ``against``: the comparison's words (:func:`.compare.render`).

    The scratch schema is built by the same dialect (the module's docstring says where).
    """
    dialect = connection.dialect
    # What the scratch schema depends on: the dialect and its server (MariaDB or MySQL, which
    # version), never the target (every tenant of a fleet compares with the same one).
    key = (dialect.name, getattr(dialect, "is_mariadb", False), dialect.server_version_info, revision)
    if key in _BUILT:  # a fleet's worker compares schema after schema with the same revision's
        return compare_with(connection, _BUILT[key], against=against)
    if dialect.name == "postgresql":
        scratch = _postgresql_scratch(connection, revision)
    elif dialect.name in ("mysql", "mariadb"):
        scratch = _mysql_scratch(connection, revision)
    else:
        scratch = _sqlite_scratch(revision)
    with scratch as expected:
        for name in RUNNER_TABLES:
            if name in expected.tables:
                expected.remove(expected.tables[name])
        _BUILT[key] = expected
        return compare_with(connection, expected, against=against)


#: (dialect, MariaDB, server version, revision) -> the schema it builds, reflected: built once
#: per process (the shipped scripts do not change under a running process).
_BUILT: dict[tuple[Any, ...], sa.MetaData] = {}


def drift(target: Any = None) -> Drift:
    """Whether the database is what its applied revision says: its live schema against the
    schema that revision builds (at any revision, head or not), built in a scratch place of
    the same kind (:func:`differences`); every difference one line (``extra index note.ix_by_hand``, ``missing table audit``,
    ``modify_type note.body: database VARCHAR(length=20), revision TEXT()``). Writes nothing
    to the database but the scratch place (a temporary schema or database, dropped).

    :raises MigrateError: unreachable, or at a revision this package does not ship.
    """
    from ..database import ledger
    from ..database.target import resolve
    from ..history import graph
    from ..results import Drift

    db = resolve(target)
    connections.check_sqlite_file(db, will_write=False)
    if db.file_missing():
        return Drift(db.masked, (), [])
    with connections.connect(db, will_write=False) as connection:
        current = connections.read_current(connection)
        graph.require_known(current, db.masked, lambda unknown: ledger.plugins_of(connection, unknown))
        found = differences(connection, current or "base", against="revision")
    return Drift(db.masked, current, found)


def stamp_checked(connection: Connection, db: Database, revision: str, *, force: bool = False,
                  detail: str | None = None) -> None:
    """Record ``revision`` after checking the schema is that revision's (unless ``force``).

    :raises MigrateError: the schema differs (listing how); nothing is written then.
    """
    from alembic import command

    from ..database import ledger
    from ..runtime import integrity
    from ..runtime.failures import explain_failure

    if not force:
        try:
            found = differences(connection, revision)
        except MigrateError:
            raise
        except Exception as exc:
            raise explain_failure(exc, None, connection, db) from exc
        if found:
            shown = "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")
            raise MigrateError(
                f"{db.masked} does not have the schema of {revision}: "
                f"{len(found)} difference(s): {shown}; nothing stamped (--force to stamp anyway)"
            )
    ledger.ensure(connection)  # only now: a refused stamp leaves nothing behind
    started = ledger.now()
    try:
        connections.drop_blank_version_rows(connection)  # Alembic cannot stamp over one
        command.stamp(scripts.make_config(connection=connection), revision)
        for rev in connections.current_in_transaction(connection):
            ledger.write(
                connection,
                revision=rev,
                direction="stamp",
                checksum=integrity.shipped_checksum(rev),
                started_at=started,
                outcome="stamped",
                detail=detail or ("forced" if force else None),
            )
        if connection.in_transaction():
            connection.commit()
    except Exception as exc:
        raise explain_failure(exc, None, connection, db) from exc


def record_repair(connection: Connection, db: Database, revision: str, *, applied: bool, force: bool) -> None:
    """The operator's decision on a partial revision, after checking the schema agrees.

    :raises UsageError: ``revision`` does not await repair.
    :raises MigrateError: the schema is not the one the decision claims (unless ``force``).
    """
    from ..database import ledger
    from ..history import graph
    from ..runtime import integrity
    from ..runtime.repair import REPAIRED, pending_repairs

    waiting = pending_repairs(connection)
    if revision not in waiting:
        known = ", ".join(waiting) or "none"
        raise UsageError(f"revision {revision} does not await repair (awaiting: {known})")
    script = graph.script(revision)
    parent = graph.as_tuple(script.down_revision if script is not None else None)
    claimed = revision if applied else (parent[0] if len(parent) == 1 else "base")
    if applied:
        stamp_checked(connection, db, revision, force=force, detail="repair: applied by hand")
    else:
        found = differences(connection, claimed) if claimed != "base" and not force else []
        if found:
            raise MigrateError(
                f"{db.masked} does not have the schema of {claimed} (before {revision}): "
                f"{'; '.join(found[:3])}; nothing recorded (--force to record anyway)"
            )
        # A downgrade that stopped part way left the version table at the revision itself:
        # reverted by hand, the database is at the revision before it (an upgrade's is already).
        if connections.current_in_transaction(connection) != ((claimed,) if claimed != "base" else ()):
            from alembic import command

            command.stamp(scripts.make_config(connection=connection), claimed)
    ledger.ensure(connection)
    ledger.write(
        connection,
        revision=revision,
        direction="repair",
        checksum=integrity.shipped_checksum(revision),
        started_at=ledger.now(),
        outcome=REPAIRED,
        detail="applied by hand" if applied else "reverted by hand",
    )
    connection.commit()


def adopter(baseline: str) -> Callable[[Connection, Database], None]:
    """``upgrade --baseline REV``: check the schema is REV's, then stamp it (``stamp``'s check)."""
    from ..history import graph

    def adopt(connection: Connection, db: Database) -> None:
        graph.require_revision(baseline)
        stamp_checked(connection, db, baseline, detail="baseline")

    return adopt
