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

from .. import events
from ..errors import MigrateError, UsageError
from ..identity import COMMAND, LOCK_NAME, MIGRATION_URL_VAR, advisory_lock_key, sqlite_lock_file
from . import connections, lease, settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .target import Database

POLL_SECONDS = 0.2

#: The advisory lock key without a tenant's schema, as every version took.
ADVISORY_LOCK_KEY = advisory_lock_key(None)

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
        events.emit(events.LOCK_ACQUIRED, target=db.masked, seconds=0.0)
        return
    holder = describe_holder()
    events.emit(events.LOCK_WAIT, target=db.masked, holder=holder, timeout=timeout)
    if on_wait is not None:
        on_wait(f"waiting up to {timeout:g}s for the migration lock on {db.masked}, held by {holder}")
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if try_acquire():
            events.emit(events.LOCK_ACQUIRED, target=db.masked, seconds=time.monotonic() - started)
            return
    raise LockTimeout(
        f"could not take the migration lock on {db.masked} within {timeout:g}s: "
        f"another migrator ({describe_holder()}) is still running; nothing was changed"
    )


#: The advisory lock held by a session of this database, as pg_locks stores its key.
_OUR_LOCK = lease.ADVISORY_HELD
POOLING_HELP = (
    "connections are pooled per transaction (pgbouncer pool_mode=transaction, RDS Proxy and "
    "the like), and a migration needs one server session for its whole run: give "
    f"{COMMAND} a direct URL (--url, or ${MIGRATION_URL_VAR}), while the application keeps "
    "its pooled one, or migrate through the pooler with --lock lease"
)


class PoolingError(MigrateError):
    """The migration lock is not held by the server session running the migration."""


class Session:
    """What the runner checks on the connection that holds the migration lock."""

    def __init__(self, connection: Connection | None = None, pid: int | None = None,
                 key: int = ADVISORY_LOCK_KEY) -> None:
        self.connection = connection
        self.pid = pid  #: the server process holding the PostgreSQL lock
        self.key = key  #: which advisory lock: one per (database, schema)
        #: ``--lock auto``: gives up the advisory lock for a lease once a pooler shows (the
        #: runner then retries the revision the check rolled back); None: nothing to switch to.
        self.to_lease: Callable[[], Any] | None = None

    def verify(self, now: int | None = None) -> None:
        """Inside a transaction: it runs in the session that holds the lock. ``now``: the
        server process this transaction runs in, if the caller read it already.

        :raises PoolingError: it does not (a pooler moved this client to another session).
        """
        if self.connection is None:
            return
        if now is None:
            from sqlalchemy import text

            now = self.connection.execute(text("SELECT pg_backend_pid()")).scalar()
        if now != self.pid:
            raise PoolingError(
                f"the migration lock was taken in server session {self.pid} but this transaction "
                f"runs in {now}: {POOLING_HELP}; the running revision was rolled back"
            )


@contextlib.contextmanager
def postgresql_lock(
    connection: Connection, db: Database, timeout: float, on_wait: Waiting | None = None
) -> Iterator[Session]:
    """A session-level advisory lock, proven to be held by the session that migrates.

    Each attempt runs in one transaction, so in one server session even behind a pooler:
    it refuses when that session already holds the lock (another client's, reached
    through a transaction pooler), else takes it and notes the server process. The
    runner then checks that every revision runs in that process (:meth:`Session.verify`).
    """
    from sqlalchemy import text

    key = {"key": advisory_lock_key(db.schema)}
    session = Session(connection, key=key["key"])

    def try_acquire() -> bool:
        if connection.execute(text(f"SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE {_OUR_LOCK} "
                                   "AND l.pid = pg_backend_pid())"), key).scalar():
            connection.rollback()
            raise PoolingError(
                f"{db.masked}: this server session already holds the migration lock, taken by "
                f"another client: {POOLING_HELP}; nothing was changed"
            )
        got, pid = connection.execute(text("SELECT pg_try_advisory_lock(:key), pg_backend_pid()"), key).one()
        if got and lease.blocks_advisory(connection):  # a migrator through a pooler holds the lease
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)  # same transaction, same session
            got = False
        connection.commit()  # the lock is session-level: it outlives this transaction
        if got:
            session.pid = pid
        return bool(got)

    def describe_holder() -> str:
        row = connection.execute(
            text("SELECT l.pid, a.client_addr FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                 f"WHERE {_OUR_LOCK}"),
            key,
        ).first()
        connection.commit()
        if row is None:
            return "another session"
        where = f" from {row.client_addr}" if row.client_addr else ""
        return f"server process {row.pid}{where}"

    _wait_until(try_acquire, timeout, describe_holder, db, on_wait)
    try:
        session.verify()  # the very next transaction: a transaction pooler shows at once
        connection.commit()
        yield session
    finally:
        _give_back(connection, db, session.pid, session.key, timeout, on_wait)


#: The longest a migrator tries to give the advisory lock back through a pooler (a shorter
#: --lock-timeout bounds it too).
RELEASE_SECONDS = 15.0


def _give_back(connection: Connection, db: Database, pid: int | None, lock_key: int, lock_timeout: float,
               on_wait: Waiting | None) -> None:
    """Release the advisory lock for up to the lock timeout (at most :data:`RELEASE_SECONDS`);
    if its session stayed busy all that time, say which session holds it and how to end it."""
    within = min(lock_timeout, RELEASE_SECONDS)
    if not _release(connection, pid, lock_key, within) and on_wait is not None:
        on_wait(f"{db.masked}: could not give the migration lock back: server session {pid} stayed "
                f"busy with another client's transaction for {within:g}s and holds it until that "
                f"session ends (SELECT pg_terminate_backend({pid}) ends it at once)")


def _release(connection: Connection, pid: int | None, lock_key: int, within: float) -> bool:
    """Unlock in the holding session. When a pooler has put this client elsewhere, try
    again in new transactions for up to ``within`` seconds, each either landing in the
    holding session (and unlocking there) or ending that session at a moment it is idle (no
    one's transaction runs there), so no lock is left on a pooled connection. False: the holding session stayed busy with another client's
    transaction all that time, and still holds the lock."""
    from sqlalchemy import text

    key = {"key": lock_key, "pid": pid}
    try:
        if connection.in_transaction():
            connection.rollback()
        # PostgreSQL 14+ can wait for the session to have ended (and its lock to be gone)
        # before answering; older servers end it a moment later.
        terminate = "pg_terminate_backend(a.pid, 5000)" if connection.dialect.server_version_info >= (14,) \
            else "pg_terminate_backend(a.pid)"
        # Each try is one transaction, wherever the pooler puts it: in the holding session,
        # unlock; elsewhere, end the holding session if it is idle; else try again.
        deadline = time.monotonic() + within
        while True:
            unlocked, still_held, ended = connection.execute(
                text("SELECT CASE WHEN pg_backend_pid() = :pid THEN pg_advisory_unlock(:key) END, "
                     "EXISTS (SELECT 1 FROM pg_locks l WHERE " + _OUR_LOCK + " AND l.pid = :pid), "
                     f"(SELECT bool_or({terminate}) FROM pg_stat_activity a "
                     "WHERE a.pid = :pid AND a.pid <> pg_backend_pid() AND a.state = 'idle')"),
                key,
            ).one()
            connection.commit()
            if unlocked is not None or not still_held or ended:
                return True
            if time.monotonic() >= deadline:  # the bound, overshot by one pause at most
                return False
            time.sleep(0.02)
    except Exception:  # noqa: BLE001 - the session may be gone, and the lock with it
        return True


def _mysql_lock_name(connection: Connection) -> str:
    """Named locks are server-wide: the name says which database (at most 64 characters)."""
    database = connection.exec_driver_sql("SELECT DATABASE()").scalar() or ""
    name = f"{LOCK_NAME}:{database}"
    if len(name) > 64:
        name = f"{LOCK_NAME}:{hashlib.sha256(database.encode()).hexdigest()}"[:64]
    return name


@contextlib.contextmanager
def mysql_lock(
    connection: Connection, db: Database, timeout: float, on_wait: Waiting | None = None
) -> Iterator[Session]:
    """MySQL's and MariaDB's ``GET_LOCK``: held by the session, through every commit (DDL
    commits implicitly there), released by the server when the session ends."""
    from sqlalchemy import text

    name = {"name": _mysql_lock_name(connection)}
    connection.commit()

    def try_acquire() -> bool:
        got = connection.execute(text("SELECT GET_LOCK(:name, 0)"), name).scalar()
        connection.commit()
        return got == 1

    def describe_holder() -> str:
        holder = connection.execute(text("SELECT IS_USED_LOCK(:name)"), name).scalar()
        host = None
        if holder is not None:
            host = connection.execute(
                text("SELECT host FROM information_schema.processlist WHERE id = :id"), {"id": holder}
            ).scalar()
        connection.commit()
        if holder is None:
            return "another session"
        return f"server connection {holder}" + (f" from {host}" if host else "")

    _wait_until(try_acquire, timeout, describe_holder, db, on_wait)
    try:
        yield Session()
    finally:
        with contextlib.suppress(Exception):  # the session may be gone; the lock with it
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), name)
            connection.commit()


def mysql_migrator_alive(connection: Connection) -> bool:
    """Some session holds this database's migration lock (MySQL, MariaDB)."""
    from sqlalchemy import text

    holder = connection.execute(text("SELECT IS_USED_LOCK(:name)"), {"name": _mysql_lock_name(connection)}).scalar()
    connection.commit()
    return holder is not None


def sidecar(path: Path) -> Path:
    """The lock file of the SQLite database at ``path``."""
    return path.with_name(Path(sqlite_lock_file(path.name)).name)


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
        except OSError as exc:  # a directory in its place, no permission to create it...
            raise MigrateError(f"cannot take the migration lock of {db.masked}: its lock file {sidecar(path)} "
                               f"cannot be opened ({exc.strerror or exc}); remove or fix what is there (it holds "
                               "nothing)") from None
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
    busy_timeout: float | None = None,
) -> Iterator[tuple[Connection, Session]]:
    """A connection for a command that writes, holding the migration lock.

    Unwinds in reverse: the PostgreSQL lock is released, then the connection is
    closed, then the SQLite lock (after the last commit).
    """
    with contextlib.ExitStack() as stack:
        if db.sqlite_path is not None:
            connections.check_sqlite_file(db, will_write=True)
            stack.enter_context(sqlite_lock(db.sqlite_path, db, lock_timeout, on_wait))
        mode = settings.lock_mode()
        if mode == "lease" and not db.is_postgresql:
            raise UsageError(f"--lock lease is for PostgreSQL behind a transaction pooler; {db.backend} "
                             "takes its own lock (leave --lock out)")
        connection = stack.enter_context(connections.connect(db, will_write=True, busy_timeout=busy_timeout))
        session: Any = Session()
        if db.is_postgresql and mode != "lease":
            try:
                session = stack.enter_context(postgresql_lock(connection, db, lock_timeout, on_wait))
            except PoolingError:
                if mode == "advisory":
                    raise
                if on_wait is not None:
                    on_wait(f"{db.masked}: connections are pooled per transaction: taking a lease lock instead")
                mode = "lease"
        def take_lease() -> lease.LeaseSession:
            def wait(try_acquire: Callable[[], bool], describe_holder: Callable[[], str]) -> None:
                _wait_until(try_acquire, lock_timeout, describe_holder, db, on_wait)

            return stack.enter_context(lease.lease_lock(connection, db, settings.lease_seconds(),
                                                        advisory_lock_key(db.schema), wait))

        if mode == "lease" and db.is_postgresql:
            session = take_lease()
        elif mode == "auto" and db.is_postgresql:
            advisory = session

            def to_lease() -> lease.LeaseSession:
                """A revision ran in another server session than the lock's: a pooler. The
                advisory lock is given up (where it can be), the lease taken."""
                _give_back(connection, db, advisory.pid, advisory.key, lock_timeout, on_wait)
                if on_wait is not None:
                    on_wait(f"{db.masked}: connections are pooled per transaction: going on under a lease lock")
                return take_lease()

            session.to_lease = to_lease
        elif db.is_mysql:
            session = stack.enter_context(mysql_lock(connection, db, lock_timeout, on_wait))
        yield connection, session
