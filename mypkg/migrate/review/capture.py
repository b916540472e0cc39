"""What one revision does, watched while it runs on a scratch copy of the schema: each
statement it sends, the table locks each takes, the tables each rewrites.

The locks are read as ``roundtrip --report`` reads them: PostgreSQL's ``pg_locks`` for the
migrating session (a lock lasts to the commit, so after each statement the session's locks
are what it took so far). A rewrite is a table whose storage changed: PostgreSQL's
relfilenode, SQLite's root page (batch mode's copy, drop and rename), InnoDB's table id.
SQLite's lock is the database's, MySQL's and MariaDB's the table's metadata lock, named
from the statement (their servers keep no per-session lock list one can read by default).
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

from .. import events
from ..database.ledger import RUNNER_TABLES
from ..results import PlannedStatement

if TYPE_CHECKING:
    from collections.abc import Iterator

#: PostgreSQL's table lock modes, weakest first (the server's own names).
LOCK_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
              "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
#: SQLite: one lock for the whole database; readers go on in WAL mode, other writers wait.
SQLITE_LOCK = "database write lock"
#: MySQL, MariaDB: a DDL statement's lock on its table; DML's.
METADATA_LOCK, ROW_LOCKS = "metadata lock", "row locks"

#: Statements that only read or set up: not the revision's work (batch mode's reflection too).
_READS = frozenset({"SELECT", "SHOW", "SET", "DESCRIBE", "EXPLAIN", "BEGIN", "START", "COMMIT", "ROLLBACK", "PRAGMA",
                    "SAVEPOINT", "RELEASE", "RESET"})
_DDL = frozenset({"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "COMMENT"})
_NAME = r'("[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+)(?:\s*\.\s*("[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+))?'
#: Where a statement names the table it works on.
_TABLE_OF = [re.compile(pattern + _NAME, re.IGNORECASE) for pattern in (
    r"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?",
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:\S+\s+)?ON\s+(?:ONLY\s+)?",
    r"^\s*DROP\s+INDEX\s+\S+\s+ON\s+",
    r"^\s*(?:CREATE|DROP)\s+TABLE\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?",
    r"^\s*INSERT\s+(?:IGNORE\s+)?INTO\s+",
    r"^\s*UPDATE\s+(?:ONLY\s+)?",
    r"^\s*DELETE\s+FROM\s+(?:ONLY\s+)?",
    r"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?",
    r"^\s*RENAME\s+TABLE\s+",
)]
#: PostgreSQL statements run outside a transaction (an autocommit block), whose lock ends
#: with them, before it can be read: the lock its documentation gives.
_OUTSIDE = re.compile(r"\bCONCURRENTLY\b|^\s*(VACUUM|ANALYZE)\b", re.IGNORECASE)


def is_work(statement: str) -> bool:
    """A statement of the revision's own work: not a read, not the runner's bookkeeping."""
    words = statement.split(None, 1)
    if not words or words[0].upper() in _READS:
        return False
    return not any(name in statement for name in RUNNER_TABLES)


def table_named(statement: str) -> str | None:
    """The table a statement works on, unquoted, without its schema; None if it names none."""
    for pattern in _TABLE_OF:
        found = pattern.search(statement)
        if found:
            name = found.group(2) or found.group(1)
            return name.strip('"`[]')
    return None


def is_ddl(statement: str) -> bool:
    words = statement.split(None, 1)
    return bool(words) and words[0].upper() in _DDL


def stronger(mode: str, than: str | None) -> bool:
    return than is None or LOCK_MODES.index(mode) > LOCK_MODES.index(than)


class Watch:
    """Listens while the runner applies one revision to the scratch copy (one revision a
    run): from the revision's start (its ``revision.start`` event) to its version row."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.on = False
        self.statements: list[PlannedStatement] = []
        self.start: dict[str, Any] | None = None  #: table -> storage id when the revision began
        self.storage: dict[str, Any] = {}  #: the same, after the last statement
        self.held: dict[str, str] = {}  #: PostgreSQL: the locks the session holds now
        self.outside_lock: dict[str, str] = {}  #: the lock an autocommit statement is about to take

    @contextlib.contextmanager
    def listening(self) -> Iterator[Watch]:
        """Every engine's statements (the runner makes its own), and no listener but this
        one hears the scratch run's events: it is not the command's migration."""
        import sqlalchemy as sa
        from sqlalchemy import event

        event.listen(sa.engine.Engine, "before_cursor_execute", self._before)
        event.listen(sa.engine.Engine, "after_cursor_execute", self._after)
        try:
            with events.only(self._heard):
                yield self
        finally:
            event.remove(sa.engine.Engine, "before_cursor_execute", self._before)
            event.remove(sa.engine.Engine, "after_cursor_execute", self._after)

    def _heard(self, event: str, _fields: dict[str, Any]) -> None:
        if event == events.REVISION_START:
            self.on = True

    def _before(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not self.on:
            return
        if "alembic_version" in statement and statement.split(None, 1)[0].upper() in ("UPDATE", "INSERT", "DELETE"):
            self.on = False  # the revision's own work is done: its version row
            return
        raw = conn.connection.dbapi_connection
        if self.start is None and is_work(statement):  # the search path is the scratch's by now
            self.start = self.storage = storage(raw, self.dialect)
            self.held = held_locks(raw) if self.dialect == "postgresql" else {}
        if self.dialect == "postgresql" and is_work(statement) and _autocommit(conn):
            self.outside_lock = _documented_lock(raw, statement)

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not self.on:
            return
        raw = conn.connection.dbapi_connection
        if not is_work(statement):
            if self.dialect == "postgresql" and self.start is not None and not _autocommit(conn):
                self.held = held_locks(raw)  # a read's lock is not the next statement's
            return
        now = storage(raw, self.dialect)
        rewrites = tuple(sorted(
            table for table, place in now.items()
            if table in (self.start or {}) and place != self.start[table] and self.storage.get(table) != place))
        self.storage = now
        outside = self.dialect == "postgresql" and _autocommit(conn)
        if outside:
            locks, self.held = self.outside_lock, {}
        elif self.dialect == "postgresql":
            found = held_locks(raw)
            locks = {table: mode for table, mode in found.items() if stronger(mode, self.held.get(table))}
            self.held = found
        else:
            table = table_named(statement)
            kind = SQLITE_LOCK if self.dialect == "sqlite" else METADATA_LOCK if is_ddl(statement) else ROW_LOCKS
            locks = {table: kind} if table and table not in RUNNER_TABLES else {}
        self.statements.append(PlannedStatement(" ".join(statement.split()), locks, rewrites, outside))

    def created(self) -> tuple[str, ...]:
        """The tables the revision made (batch mode's temporary copies were renamed away)."""
        return tuple(sorted(set(self.storage) - set(self.start or {})))

    def existing(self) -> set[str]:
        """The tables there before the revision began."""
        return set(self.start or {})

    def rewritten(self) -> tuple[str, ...]:
        start = self.start or {}
        return tuple(sorted(t for t, place in self.storage.items() if t in start and place != start[t]))

    def strongest(self) -> dict[str, str]:
        """Each table's strongest lock over the revision: held until it commits (batch
        mode's temporary copies, gone by then, left out)."""
        found: dict[str, str] = {}
        kept = self.existing() | set(self.storage)
        for statement in self.statements:
            for table, mode in statement.locks.items():
                if table not in kept:
                    continue
                if mode not in LOCK_MODES:
                    found.setdefault(table, mode)
                elif found.get(table) not in LOCK_MODES or stronger(mode, found.get(table)):
                    found[table] = mode
        return found


def _autocommit(conn: Any) -> bool:
    return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _query(raw: Any, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """On the migrating session, through the driver: the engine's listeners do not hear it."""
    cursor = raw.cursor()
    try:
        cursor.execute(sql, parameters) if parameters else cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def storage(raw: Any, dialect: str) -> dict[str, Any]:
    """Each table's storage: a new one means the table was rewritten. MySQL without the
    PROCESS privilege (InnoDB's tables are hidden then): nothing, no rewrite told."""
    if dialect == "postgresql":
        rows = _query(raw, "SELECT c.relname, c.relfilenode FROM pg_class c WHERE c.relkind IN ('r', 'p') "
                           "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())")
    elif dialect == "sqlite":
        rows = _query(raw, "SELECT name, rootpage FROM sqlite_master WHERE type = 'table'")
    else:
        try:
            rows = [(name.rpartition("/")[2], table_id) for name, table_id in _query(
                raw, "SELECT NAME, TABLE_ID FROM information_schema.INNODB_SYS_TABLES "
                     "WHERE NAME LIKE CONCAT(DATABASE(), '/%%')")]
        except Exception:  # noqa: BLE001 - no PROCESS privilege, or MySQL 8's INNODB_TABLES
            rows = []
    return {name: place for name, place in rows if name not in RUNNER_TABLES}


def held_locks(raw: Any) -> dict[str, str]:
    """PostgreSQL: the strongest lock this session holds on each table of its schema."""
    found: dict[str, str] = {}
    for table, mode in _query(raw, "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                   "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' "
                                   "AND c.relkind IN ('r', 'p') "
                                   "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"):
        if table not in RUNNER_TABLES and mode in LOCK_MODES and stronger(mode, found.get(table)):
            found[table] = mode
    return found


def _documented_lock(raw: Any, statement: str) -> dict[str, str]:
    """PostgreSQL, a statement outside a transaction: CONCURRENTLY, VACUUM and ANALYZE take
    SHARE UPDATE EXCLUSIVE (reads and writes go on); any other: unknown."""
    table = table_named(statement)
    if table is None and re.match(r"\s*DROP\s+INDEX\b", statement, re.IGNORECASE):
        index = statement.split()[-1].strip('"').rpartition(".")[2].strip('"')
        rows = _query(raw, "SELECT tablename FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s",
                      (index,))
        table = rows[0][0] if rows else None
    if table is None:
        return {}
    return {table: "ShareUpdateExclusiveLock" if _OUTSIDE.search(statement) else "unknown (outside a transaction)"}
