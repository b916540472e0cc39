"""The migration lock: one migrator at a time per database.

Several application replicas may start at once, each running ``mypkg-migrate
upgrade``. Alembic itself takes no lock, so two of them could both see revision N
pending and both run it. Every command that writes holds this lock, then re-reads the
current revision (the previous holder may have migrated already).

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on the
  migration connection. It survives the per-revision commits and the server releases
  it when the session ends, including when the migrator is killed.
- SQLite: a lock on a sidecar file beside the database, ``<db>.mypkg-migrate.lock``,
  through :mod:`filelock` (``flock`` on POSIX, ``msvcrt.locking`` on Windows), which the
  operating system releases when the process dies. Never a lock on the database file
  itself: on macOS, the BSDs and network filesystems, such a lock conflicts with
  SQLite's own locks on that file. The sidecar holds nothing; it is safe to delete
  when no migrator runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import connections
from .errors import MigrateError
from .identity import LOCK_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .target import Database

POLL_SECONDS = 0.2

#: The advisory lock key: a stable signed 64-bit number derived from the command name,
#: so every migrator of this package, of any version, contends for the same lock.
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)

Waiting = Callable[[str], None]


class LockTimeout(MigrateError):
    """Another migrator held the lock for longer than the timeout."""


def _wait_until(
    try_acquire: Callable[[], bool],
    timeout: float,
    describe_holder: Callable[[], str],
    db: Database,
    on_wait: Waiting | None,
) -> None:
    if try_acquire():
        return
    holder = describe_holder()
    if on_wait is not None:
        on_wait(f"waiting up to {timeout:g}s for the migration lock on {db.masked}, held by {holder}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if try_acquire():
            return
    raise LockTimeout(
        f"could not take the migration lock on {db.masked} within {timeout:g}s: "
        f"another migrator ({describe_holder()}) is still running; nothing was changed"
    )


@contextlib.contextmanager
def postgresql_lock(
    connection: Connection, db: Database, timeout: float, on_wait: Waiting | None = None
) -> Iterator[None]:
    from sqlalchemy import text

    def try_acquire() -> bool:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        acquired = bool(got.scalar())
        connection.commit()  # the lock is session-level: it outlives this transaction
        return acquired

    def describe_holder() -> str:
        # The advisory key is stored as two 32-bit halves in pg_locks.
        row = connection.execute(
            text(
                "SELECT l.pid, a.application_name, a.client_addr FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.objsubid = 1 AND l.classid = ((:key >> 32) & 4294967295)::oid "
                "AND l.objid = (:key & 4294967295)::oid"
            ),
            {"key": ADVISORY_LOCK_KEY},
        ).first()
        connection.commit()
        if row is None:
            return "another session"
        where = f" from {row.client_addr}" if row.client_addr else ""
        return f"server process {row.pid}{where}"

    _wait_until(try_acquire, timeout, describe_holder, db, on_wait)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the session may be gone; the lock with it
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()


def sidecar(path: Path) -> Path:
    """The lock file of the SQLite database at ``path``."""
    return path.with_name(f"{path.name}.{LOCK_NAME}.lock")


def _filelock() -> Any:
    import warnings

    with warnings.catch_warnings():
        # Where neither flock nor msvcrt exists, filelock falls back to a lock file that
        # it breaks when its owner's process is gone, and warns once: not the user's concern.
        warnings.simplefilter("ignore")
        import filelock

    return filelock


@contextlib.contextmanager
def sqlite_lock(path: Path, db: Database, timeout: float, on_wait: Waiting | None = None) -> Iterator[None]:
    filelock = _filelock()
    lock = filelock.FileLock(sidecar(path), is_singleton=False, thread_local=False)

    def try_acquire() -> bool:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        return True

    _wait_until(try_acquire, timeout, lambda: f"another process (lock file {sidecar(path)})", db, on_wait)
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def locked(
    db: Database,
    lock_timeout: float,
    on_wait: Waiting | None,
    busy_timeout: float = connections.DEFAULT_BUSY_TIMEOUT,
) -> Iterator[Connection]:
    """A connection for a command that writes, holding the migration lock.

    Unwinds in reverse: the PostgreSQL lock is released, then the connection is
    closed, then the SQLite lock (after the last commit).
    """
    with contextlib.ExitStack() as stack:
        if db.sqlite_path is not None:
            connections.check_sqlite_file(db, will_write=True)
            stack.enter_context(sqlite_lock(db.sqlite_path, db, lock_timeout, on_wait))
        connection = stack.enter_context(connections.connect(db, will_write=True, busy_timeout=busy_timeout))
        if db.is_postgresql:
            _notice_dead_clients(connection)
            stack.enter_context(postgresql_lock(connection, db, lock_timeout, on_wait))
        yield connection


def _notice_dead_clients(connection: Connection) -> None:
    """Make the server end this session soon after its client dies (PostgreSQL 14+).

    Without it, a killed migrator's server process runs its statement to the end,
    holding the revision's locks and the migration lock until then.
    """
    from sqlalchemy import text

    if connection.dialect.server_version_info >= (14,):
        connection.execute(text("SET client_connection_check_interval = '1s'"))
        connection.commit()
