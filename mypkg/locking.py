"""The migration lock: one migrator at a time per database.

Several application replicas may start at once, each running ``mypkg-migrate
upgrade``. Alembic itself takes no lock, so two of them could both see revision N
pending and both run it. Every command that writes holds this lock, then re-reads the
current revision (the previous holder may have migrated already).

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on the
  migration connection. It survives the per-revision commits and the server releases
  it when the session ends, including when the migrator is killed.
- SQLite: an exclusive ``flock`` on the database file itself (no sidecar file). SQLite
  locks with POSIX ``fcntl`` locks, which ``flock`` does not interact with on Linux;
  the kernel releases it when the process dies. The descriptor is closed only after
  the migration connection has committed, because closing any descriptor of the file
  drops the process's ``fcntl`` locks on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MigrateError
from .settings import DEFAULT_LOCK_TIMEOUT, mask  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection

POLL_SECONDS = 0.2

#: The advisory lock key: a stable signed 64-bit number derived from the package name,
#: so every mypkg-migrate, of any version, contends for the same lock.
ADVISORY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"mypkg-migrate").digest()[:8], "big", signed=True)

Waiting = Callable[[str], None]


class LockTimeout(MigrateError):
    """Another migrator held the lock for longer than the timeout."""


def _wait_until(
    try_acquire: Callable[[], bool],
    timeout: float,
    describe_holder: Callable[[], str],
    url: URL,
    on_wait: Waiting | None,
) -> None:
    if try_acquire():
        return
    holder = describe_holder()
    if on_wait is not None:
        on_wait(f"waiting up to {timeout:g}s for the migration lock on {mask(url)}, held by {holder}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if try_acquire():
            return
    raise LockTimeout(
        f"could not take the migration lock on {mask(url)} within {timeout:g}s: "
        f"another migrator ({describe_holder()}) is still running; nothing was changed"
    )


@contextlib.contextmanager
def postgresql_lock(
    connection: Connection, url: URL, timeout: float, on_wait: Waiting | None = None
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

    _wait_until(try_acquire, timeout, describe_holder, url, on_wait)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the session may be gone; the lock with it
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()


@contextlib.contextmanager
def sqlite_lock(path: Path, url: URL, timeout: float, on_wait: Waiting | None = None) -> Iterator[None]:
    import fcntl

    # O_CREAT: a new database starts as an empty file, which SQLite accepts as empty.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        _wait_until(try_acquire, timeout, lambda: "another process", url, on_wait)
        yield
    finally:
        os.close(fd)  # releases the flock
