"""A new database, or a new tenant, at a checkpointed head: installed through the driver alone.

An empty database upgraded to the revision a shipped checkpoint is at (every new tenant at
sign-up, every fresh test database) runs no revision script, so it needs neither Alembic
nor SQLAlchemy, which cost nine tenths of such an install: the checkpoint's statements and
rows, the version table, the ledger and its row go in one transaction under the migration
lock, through ``sqlite3`` or libpq (:mod:`.libpq`). It leaves what
:mod:`..runtime.checkpoint` leaves (a test compares the two: schema text, catalogs, ledger
rows) and tells the same events.

Like the fast answers it acts only when sure, and otherwise returns None having written
nothing, for the full path to run with its waits and its words:

- the destination is not a checkpoint's revision (revisions after it need Alembic), the
  checkpoint was edited (the full path refuses it, named), or it holds no form for this
  database;
- a URL the fast path does not parse the way SQLAlchemy does; MySQL and MariaDB; no libpq;
- the database (the tenant's schema) holds anything at all;
- another migrator holds the lock: the full path waits for it, saying who holds it.

The lock is the one every migrator takes. SQLite: the sidecar file's ``flock``, what
:mod:`filelock` takes there (its import alone costs more than a small install). PostgreSQL:
the same advisory key, held for the transaction (``pg_try_advisory_xact_lock``): a
session's lock and a transaction's exclude each other, and one transaction runs in one
server session even behind a transaction pooler, so the install needs no lease there.
"""

from __future__ import annotations

import os
import time

from .. import events
from ..errors import MigrateError
from ..identity import CHECKPOINT_INSTALLED, LEDGER_TABLE, VERSION_TABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..history.checkpoints import Checkpoint
    from ..results import AppliedRevision, MigrationResult
    from .answers import ParsedUrl


def fresh_install(
    url: object,
    revision: str = "head",
    *,
    on_applied: Callable[[AppliedRevision], None] | None = None,
    busy_timeout: float | None = None,
    statement_lock_timeout: float | None = None,
    check: Callable[[], None] | None = None,
) -> MigrationResult | None:
    """Install the checkpoint at ``revision`` (``head``: the only head) into the empty
    database at ``url`` (a URL string; None: ``$MYPKG_DATABASE_URL``...; anything else,
    an Engine, is the full path's); None, having written nothing, where the full path must run.

    :param busy_timeout: SQLite: how long to wait for an application's write lock.
    :param statement_lock_timeout: PostgreSQL: ``lock_timeout`` of the install's statements.
    :param check: the full path's refusals this layer cannot make (the models' naming
        convention), called once a checkpoint is found, before anything is written.
    :raises MigrateError: a statement failed (rolled back: the database stays empty), or
        the server cannot be reached (as the full path would say it).
    """
    from ..database.settings import resolve_url_string, statement_lock_timeout_ms
    from .answers import enabled, parse

    if not enabled() or not (url is None or isinstance(url, str)):
        return None
    lock_timeout_ms = statement_lock_timeout_ms(statement_lock_timeout) if statement_lock_timeout else None
    parsed = parse(resolve_url_string(url))
    if parsed is None:
        return None
    found = checkpoint_at(revision, parsed.dialect)
    if found is None:
        return None
    if check is not None:
        check()
    if parsed.dialect == "sqlite":
        seconds = _sqlite(parsed.parts["database"] or "", parsed.masked, found, busy_timeout)
    else:
        seconds = _postgresql(parsed, found, lock_timeout_ms)
    if seconds is None:
        return None
    from ..history.checkpoints import describe
    from ..results import AppliedRevision, MigrationResult

    entry = AppliedRevision(found.revision, describe(found), "upgrade", seconds)
    events.applied(entry, on_applied)
    return MigrationResult(parsed.masked, (), (found.revision,), [entry])


def checkpoint_at(revision: str, dialect: str) -> Checkpoint | None:
    """The shipped checkpoint whose revision is exactly where an empty database upgraded to
    ``revision`` ends, unedited and holding a form for ``dialect``; None otherwise."""
    from ..history import checkpoints

    if not checkpoints.shipped():
        return None
    from ..history.manifest import load

    shipped = load()
    # A long-lived process installs tenant after tenant: the graph is walked once.
    key = (revision, dialect, id(shipped), id(checkpoints.shipped()))
    if key not in _FOUND:
        _FOUND[key] = (shipped, checkpoints.shipped(), _checkpoint_in(shipped, revision, dialect))
    return _FOUND[key][2]


#: (revision, dialect, the manifest's id, the checkpoints' id) -> those two (kept: their ids
#: are never another's) and the checkpoint found.
_FOUND: dict[tuple[str, str, int, int], tuple[object, object, Checkpoint | None]] = {}


def _checkpoint_in(shipped: Any, revision: str, dialect: str) -> Checkpoint | None:
    from ..history import checkpoints

    targets = tuple(shipped.heads) if revision in ("head", "heads") else (revision,) if revision in shipped.by_id \
        else ()
    if not targets:
        return None
    planned = set(shipped.ancestors(targets))
    found = checkpoints.newest_within(planned, lambda rev: set(shipped.ancestors((rev,))), dialect)
    if found is None or found.actual != found.checksum or set(shipped.ancestors((found.revision,))) != planned:
        return None
    return found


# --- the runner's own tables, as SQLAlchemy and Alembic create them (a test compiles both) ---


def ledger_ddl(dialect: str) -> str:
    """The ledger's CREATE TABLE, as :func:`..database.ledger.table` compiles on ``dialect``."""
    sqlite = dialect == "sqlite"
    moment = "DATETIME" if sqlite else "TIMESTAMP WITH TIME ZONE"
    columns = [f"id {'INTEGER' if sqlite else 'SERIAL'} NOT NULL", "revision VARCHAR(64) NOT NULL",
               "direction VARCHAR(16) NOT NULL", "checksum VARCHAR(64)", "package_version VARCHAR(64) NOT NULL",
               f"started_at {moment} NOT NULL", f"finished_at {moment} NOT NULL", "duration_ms FLOAT NOT NULL",
               "outcome VARCHAR(16) NOT NULL", "detail TEXT", "plugin VARCHAR(64)", "PRIMARY KEY (id)"]
    return f"CREATE TABLE {LEDGER_TABLE} (\n\t" + ", \n\t".join(columns) + "\n)"


#: Alembic's version table, as its ``MigrationContext`` creates it.
VERSION_DDL = (f"CREATE TABLE {VERSION_TABLE} (\n\tversion_num VARCHAR(32) NOT NULL, \n\t"
               f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num)\n)")
_LEDGER_COLUMNS = ("revision, direction, checksum, package_version, started_at, finished_at, duration_ms, "
                   "outcome, detail, plugin")


def _ledger_values(found: Checkpoint, started: Any, finished: Any, stored: Callable[[Any], Any]) -> tuple[Any, ...]:
    from ..history.checkpoints import ledger_detail
    from ..version import package_version

    return (found.revision, "upgrade", found.checksum, package_version(), stored(started), stored(finished),
            (finished - started).total_seconds() * 1000, CHECKPOINT_INSTALLED, ledger_detail(found), None)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)


def _failed(masked: str, found: Checkpoint, message: str, seconds: float) -> MigrateError:
    """The one line of an install that failed and was rolled back, and its event."""
    first = (message.strip() or "failed").splitlines()[0]
    events.emit(events.REVISION_FAILED, revision=found.revision, direction="upgrade", seconds=seconds, error=first)
    return MigrateError(f"{masked}: checkpoint {found.path.name} could not be installed: {first}; "
                        "nothing was changed (the database is still empty)")


def _started(masked: str, found: Checkpoint) -> tuple[Any, float]:
    from ..history.checkpoints import describe

    events.emit(events.LOCK_ACQUIRED, target=masked, seconds=0.0)
    events.emit(events.REVISION_START, revision=found.revision, message=describe(found), direction="upgrade",
                plugin=None, phase=None)
    return _now(), time.perf_counter()


# --- SQLite ------------------------------------------------------------------------------


def _sqlite(database: str, masked: str, found: Checkpoint, busy_timeout: float | None) -> float | None:
    directory = os.path.dirname(database) or "."
    if not database or database == ":memory:" or not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        return None  # the full path explains
    if os.path.lexists(database):
        if not os.path.isfile(database) or not os.access(database, os.W_OK):
            return None
        with open(database, "rb") as handle:
            header = handle.read(16)
        if header not in (b"", b"SQLite format 3\x00") or header and _holds_anything(database, busy_timeout):
            return None  # a database in use: never its write lock here (the full path's wait is the one)
    try:
        import fcntl
    except ImportError:  # Windows: filelock's msvcrt lock, on the full path
        return None
    from ..identity import sqlite_lock_file

    try:
        descriptor = os.open(sqlite_lock_file(database), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another migrator holds it (or no flock here): the full path waits
            return None
        return _sqlite_install(database, masked, found, busy_timeout)
    finally:
        os.close(descriptor)  # and with it the lock


def _holds_anything(database: str, busy_timeout: float | None) -> bool:
    """Read only: the database has a table, index or view (or cannot be read: then the full
    path decides), so it is no new one; told without taking its write lock."""
    import sqlite3

    from ..database.settings import busy_timeout as default_busy_timeout

    from .answers import read_only

    try:
        connection = read_only(database, default_busy_timeout() if busy_timeout is None else busy_timeout)
        try:
            return connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None
        finally:
            connection.close()
    except sqlite3.Error:
        return True


def _sqlite_install(database: str, masked: str, found: Checkpoint, busy_timeout: float | None) -> float | None:
    import sqlite3

    from ..database.settings import busy_timeout as default_busy_timeout
    from ..database.snapshot import decode

    connection = sqlite3.connect(database, timeout=default_busy_timeout() if busy_timeout is None else busy_timeout,
                                 isolation_level=None)
    clock = time.perf_counter()
    try:
        # As the migration engine: enforcement off (its batch mode), every write in a
        # transaction that takes the write lock first, so the busy timeout applies.
        connection.execute("PRAGMA foreign_keys=OFF")
        connection.execute("BEGIN IMMEDIATE")
        if connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
            connection.execute("ROLLBACK")
            return None
        started, clock = _started(masked, found)
        form = found.forms["sqlite"]
        cursor = connection.cursor()
        cursor.execute(ledger_ddl("sqlite"))  # first, as the full path creates it
        cursor.execute("PRAGMA defer_foreign_keys = ON")
        for statement in form["statements"]:
            cursor.execute(statement)
        for table in form["rows"]:
            names = ", ".join('"' + column.replace('"', '""') + '"' for column in table["columns"])
            quoted = '"' + table["table"].replace('"', '""') + '"'
            cursor.executemany(f"INSERT INTO {quoted} ({names}) VALUES ({', '.join('?' * len(table['columns']))})",
                               [[decode(value) for value in row] for row in table["values"]])
        for statement in form["after"]:
            cursor.execute(statement)
        for entry in form["sequences"]:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = ?", (entry["name"],))
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (entry["name"], entry["value"]))
        cursor.execute(VERSION_DDL)
        cursor.execute(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (?)", (found.revision,))
        seconds = time.perf_counter() - clock
        values = _ledger_values(found, started, _now(), lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S.%f"))
        cursor.execute(f"INSERT INTO {LEDGER_TABLE} ({_LEDGER_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
                       values)
        connection.execute("COMMIT")
        return seconds
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        message = str(exc)
        if "locked" in message or "busy" in message:  # waited the whole bound: not again
            from ..database.connections import LOCKED_HINT

            message = f"{message}: {LOCKED_HINT}"
        raise _failed(masked, found, message, time.perf_counter() - clock) from None
    finally:
        connection.close()


# --- PostgreSQL --------------------------------------------------------------------------


def _postgresql(parsed: ParsedUrl, found: Checkpoint, lock_timeout_ms: int | None) -> float | None:
    from . import libpq
    from .answers import libpq_params, refuse

    if not libpq.installed("psycopg"):
        return None  # the full path names the package to install
    params = libpq_params(parsed.parts, parsed.query)
    params.setdefault("client_encoding", "UTF8")  # the literals sent are UTF-8
    try:
        connection = libpq.Connection(params)
    except libpq.Unavailable:
        return None
    except libpq.ConnectError as exc:  # in psycopg's words, as the full path would say it
        refuse(parsed.masked, str(exc))
    with connection:
        try:
            return _postgresql_install(connection, parsed, found, lock_timeout_ms)
        except libpq.Unavailable:  # closing the connection rolls back whatever was sent
            return None


def _postgresql_install(connection: Any, parsed: ParsedUrl, found: Checkpoint,
                        lock_timeout_ms: int | None) -> float | None:
    from ..database import extensions, lease
    from ..identity import advisory_lock_key
    from ..database.settings import extensions_schema
    from ..database.snapshot import render
    from . import libpq
    from .answers import identifier, literal

    schema = parsed.schema
    key = advisory_lock_key(schema)
    held_here = lease.ADVISORY_HELD.replace(":key", str(key)) + " AND l.pid = pg_backend_pid()"
    # A session-level lock this server session holds already is another client's (a
    # transaction pooler handed us its session): never taken as ours.
    [(got,)] = connection.execute(f"BEGIN; SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks l WHERE {held_here}) "
                                  f"THEN false ELSE pg_try_advisory_xact_lock({key}) END")
    where = "current_schema()" if schema is None else literal(schema)
    # Read after the lock is held (a statement of its own: a snapshot taken after it).
    [(version, relations, schema_exists, current)] = connection.execute(
        "SELECT current_setting('server_version_num'), (SELECT count(*) FROM pg_class c JOIN pg_namespace n "
        f"ON n.oid = c.relnamespace WHERE n.nspname = {where}), "
        f"EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {where}), current_schema()")
    if got != "t" or relations != "0" or current is None:
        connection.execute("ROLLBACK", writes=True)
        return None
    started, clock = _started(parsed.masked, found)
    form = found.forms["postgresql"]
    script = []
    shared = extensions_schema()
    if schema is not None:
        if schema_exists != "t":
            script.append(f"CREATE SCHEMA IF NOT EXISTS {identifier(schema)}")
        script.append(f"SET LOCAL search_path TO {extensions.search_path(schema, identifier)}")
    if int(version) >= 140000:  # as each revision's transaction (runner._settings_for)
        script.append("SET LOCAL client_connection_check_interval = '1s'")
    if lock_timeout_ms:
        script.append(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
    script += ["SET LOCAL standard_conforming_strings = on", ledger_ddl("postgresql")]  # render()'s literals
    body = _rendered(found, form, shared if schema is not None else None)
    tail = [VERSION_DDL, f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ({literal(found.revision)})"]
    try:
        connection.execute(";\n".join(script) + ";\n" + body + ";\n".join(tail), writes=True)
        seconds = time.perf_counter() - clock
        values = _ledger_values(found, started, _now(), lambda moment: moment.isoformat())
        literals = ", ".join("NULL" if value is None else repr(value) if isinstance(value, float) else literal(value)
                             for value in values)
        connection.execute(f"INSERT INTO {LEDGER_TABLE} ({_LEDGER_COLUMNS}) VALUES ({literals}); COMMIT",
                           writes=True)
        return seconds
    except libpq.Failed as exc:
        connection.execute("ROLLBACK", writes=True)
        raise _failed(parsed.masked, found, str(exc), time.perf_counter() - clock) from None


def _rendered(found: Checkpoint, form: dict[str, Any], shared: str | None) -> str:
    """The checkpoint's form as one SQL script, a tenant's ``CREATE EXTENSION`` placed in the
    ``shared`` schema; rendered once per process (tenant after tenant sends the same)."""
    key = (found.path, found.checksum, shared)
    if key not in _RENDERED:
        from ..database import extensions
        from ..database.snapshot import render
        from .answers import identifier

        if shared is not None:
            form = {**form, "statements": [extensions.placed(statement, shared, identifier(shared))
                                           for statement in form["statements"]]}
        _RENDERED[key] = render({**form, "sequences": _moved(form)}, "postgresql")
    return _RENDERED[key]


_RENDERED: dict[tuple[Any, str, str | None], str] = {}


def _moved(form: dict[str, Any]) -> list[dict[str, Any]]:
    """The sequences whose state is not the one their CREATE SEQUENCE leaves: a sequence never
    used (not called, at its START) needs no ``setval`` (a thousand tables' sequences are a
    thousand calls, each a lock and a WAL record)."""
    import re

    start = {}
    for statement in form["statements"]:
        found = re.match(r'CREATE SEQUENCE "((?:[^"]|"")+)" .*?\bSTART WITH (-?\d+)\b', statement, re.DOTALL)
        if found:
            start[found.group(1).replace('""', '"')] = int(found.group(2))
    return [entry for entry in form["sequences"]
            if entry["called"] or start.get(entry["name"]) != int(entry["value"])]
