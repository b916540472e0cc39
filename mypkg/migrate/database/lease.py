"""The migration lock through a transaction pooler: a lease, fenced in every revision.

Behind pgbouncer in transaction pooling (RDS Proxy, Supabase's and Neon's pooled
endpoints), each transaction may run in another server session, so a session's advisory
lock means nothing. A lease needs no session: one row in a table of the runner's own
(:data:`TABLE`: the owner's random token, who holds it, since when, until when, in the
server's clock), taken, renewed and released in short transactions:

- **taking** deletes an expired lease and inserts ours, in one transaction: a holder that
  died (or was paused past its lease) is taken over once its lease ran out;
- **a heartbeat** (a thread with a connection of its own) pushes the expiry on every third
  of the lease while the migrator runs, a long revision included;
- **the fence**: just before each revision commits, in its own transaction, the row is
  locked and the owner checked (``UPDATE ... WHERE owner = ours RETURNING``, the expiry
  pushed on in the same statement). A migrator whose lease was taken over can never
  commit a revision: the check finds another owner, and the revision rolls back; and no
  one can take the lease over while that check's transaction is open.

Waiting migrators never wait on the row (a lease that ran out is deleted with ``SKIP
LOCKED``): none holds a pooled server connection for long. Nothing session-scoped:
``SET LOCAL`` only, and the engine prepares nothing.

The lease and the advisory lock exclude each other, whatever mix of migrators runs: a
lease is taken under a transaction-scoped advisory lock of the same key (refused while a
migrator on a direct connection holds it), and that migrator, once it has the advisory
lock, steps back while a lease is held (deleting one that ran out).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import MigrateError
from ..identity import COMMAND, LEASE_TABLE
from .settings import DEFAULT_LEASE_SECONDS

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .target import Database

TABLE = LEASE_TABLE
#: The one row: a tenant's schema has its own table, and so its own lease.
NAME = "migrate"
#: How long the heartbeat waits for the row (locked while a revision of ours commits).
ROW_WAIT = "200ms"


#: The advisory lock of ``:key`` held by a session of this database, as pg_locks stores it.
ADVISORY_HELD = (
    "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = ((CAST(:key AS bigint) >> 32) & 4294967295)::oid "
    "AND l.objid = (CAST(:key AS bigint) & 4294967295)::oid"
)


class LeaseLost(MigrateError):
    """Another migrator took the lease over (ours ran out): nothing more may commit."""


def _table(connection: Connection) -> str:
    from .connections import tenant_schema
    from .tenants import quote_identifier

    schema = tenant_schema(connection)
    name = quote_identifier(connection, TABLE)
    return f"{quote_identifier(connection, schema)}.{name}" if schema else name


#: How PostgreSQL tells a CREATE ... IF NOT EXISTS that another transaction created the same
#: thing meanwhile: a unique violation in its catalog, or "type ... already exists" (a
#: table's row type), "relation/schema already exists".
_CREATED_MEANWHILE = ("23505", "42710", "42P07", "42P06")


def ensure_table(connection: Connection, schema: str | None) -> None:
    """Create the lease table if missing, in a tenant's schema if missing too (migrators
    creating them at once: one wins, the others wait for it, then find them)."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    from .tenants import quote_identifier

    for attempt in range(2):
        try:
            if schema is not None:
                connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(connection, schema)}"))
            connection.execute(text(
                f"CREATE TABLE IF NOT EXISTS {_table(connection)} (name VARCHAR(64) PRIMARY KEY, "
                "owner VARCHAR(64) NOT NULL, holder TEXT NOT NULL, since TIMESTAMPTZ NOT NULL, "
                "expires TIMESTAMPTZ NOT NULL)"))
            connection.commit()
            return
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError) as exc:
            connection.rollback()
            if attempt or getattr(exc.orig, "sqlstate", None) not in _CREATED_MEANWHILE:
                raise


def holder_description() -> str:
    return f"{COMMAND} on {socket.gethostname()}, process {os.getpid()}"


def _seconds(seconds: float) -> dict[str, Any]:
    return {"seconds": float(seconds)}


def _clear_expired(connection: Connection, table: str) -> None:
    """Delete a lease that ran out, unless its row is locked (its holder's revision is
    committing: alive after all). Never waits."""
    from sqlalchemy import text

    connection.execute(text(
        f"DELETE FROM {table} WHERE ctid = (SELECT ctid FROM {table} WHERE name = :name "
        "AND expires < clock_timestamp() FOR UPDATE SKIP LOCKED)"), {"name": NAME})


def try_take(connection: Connection, owner: str, seconds: float, advisory_key: int) -> bool:
    """Take the lease if free or run out; False when another migrator holds it, or holds
    the advisory lock (a migrator on a direct connection: ``--lock advisory`` or auto),
    checked with a transaction-scoped advisory lock that a pooler cannot strand."""
    from sqlalchemy import text

    table = _table(connection)
    # Held by any session, this one included (a pooler may have handed us the session of a
    # migrator on the advisory lock, where taking it again would succeed): not ours to take.
    # Then taken for this transaction, so that no one takes it between the check and the lease.
    key = {"key": advisory_key}
    held = connection.execute(text(f"SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE {ADVISORY_HELD})"), key).scalar()
    if held or not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), key).scalar():
        connection.rollback()
        return False
    _clear_expired(connection, table)
    taken = connection.execute(text(
        f"INSERT INTO {table} (name, owner, holder, since, expires) VALUES (:name, :owner, :holder, "
        "clock_timestamp(), clock_timestamp() + make_interval(secs => :seconds)) "
        "ON CONFLICT (name) DO NOTHING RETURNING owner"),
        {"name": NAME, "owner": owner, "holder": holder_description(), **_seconds(seconds)}).scalar()
    connection.commit()
    return taken == owner


def blocks_advisory(connection: Connection) -> bool:
    """In the transaction that just took the advisory lock: does a lease migrator run?
    A lease that ran out is deleted first, so its paused holder's fence fails when it
    wakes; a lease still valid (or being committed under) means: step back."""
    from sqlalchemy import text

    table = _table(connection)
    if connection.execute(text("SELECT to_regclass(:name)"), {"name": table}).scalar() is None:
        return False
    _clear_expired(connection, table)
    return bool(connection.execute(text(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE name = :name)"),
                                   {"name": NAME}).scalar())


def describe(connection: Connection) -> str:
    """Who holds the lease, since when, and when it runs out."""
    from sqlalchemy import text

    row = connection.execute(text(
        f"SELECT holder, since, expires, ceil(extract(epoch FROM expires - clock_timestamp())) "
        f"FROM {_table(connection)} WHERE name = :name"), {"name": NAME}).first()
    connection.commit()
    if row is None:
        return "a migrator holding the advisory lock"
    holder, since, expires, left = row
    when = f"expires in {int(left)}s" if left is not None and left > 0 else f"expired at {expires:%H:%M:%S} UTC"
    return f"{holder} since {since:%Y-%m-%d %H:%M:%S} UTC (lease {when})"


def renew(connection: Connection, owner: str, seconds: float, *, wait: bool = False) -> bool:
    """Push our lease's expiry on; False when it is no longer ours. Inside a revision's
    transaction (``wait``), this is the fence: the row stays locked until the commit."""
    from sqlalchemy import text

    if not wait:
        connection.execute(text(f"SET LOCAL lock_timeout = '{ROW_WAIT}'"))
    still = connection.execute(text(
        f"UPDATE {_table(connection)} SET expires = clock_timestamp() + make_interval(secs => :seconds) "
        "WHERE name = :name AND owner = :owner RETURNING 1"),
        {"name": NAME, "owner": owner, **_seconds(seconds)}).scalar()
    return still is not None


def release(connection: Connection, owner: str) -> None:
    from sqlalchemy import text

    with contextlib.suppress(Exception):  # gone with the connection: it runs out by itself
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text(f"DELETE FROM {_table(connection)} WHERE name = :name AND owner = :owner"),
                           {"name": NAME, "owner": owner})
        connection.commit()


class Heartbeat(threading.Thread):
    """Renews the lease every third of its length, on a connection of its own, until
    stopped; notes when the lease turned out to be someone else's."""

    def __init__(self, db: Database, owner: str, seconds: float) -> None:
        super().__init__(name=f"{COMMAND} lease heartbeat", daemon=True)
        self.db, self.owner, self.seconds = db, owner, seconds
        self.stopping = threading.Event()
        self.lost = False

    def run(self) -> None:
        from sqlalchemy.pool import NullPool

        from .connections import create_engine

        engine = create_engine(self.db.url, for_migrations=True, schema=self.db.schema, poolclass=NullPool)
        try:
            while not self.stopping.wait(self.seconds / 3):
                try:
                    with engine.connect() as connection:
                        ours = renew(connection, self.owner, self.seconds)
                        connection.commit()
                except Exception:  # noqa: BLE001 - the row busy (a revision's fence), the network: next beat
                    continue
                if not ours:
                    self.lost = True
                    return
        finally:
            engine.dispose()


class LeaseSession:
    """The lock a migration holds through a pooler; :meth:`verify` is the fence."""

    def __init__(self, connection: Connection, owner: str, seconds: float) -> None:
        self.connection, self.owner, self.seconds = connection, owner, seconds

    def verify(self, now: int | None = None) -> None:
        """Inside the revision's transaction, just before it commits.

        :raises LeaseLost: the lease is another migrator's now; the revision rolls back.
        """
        if not renew(self.connection, self.owner, self.seconds, wait=True):
            raise LeaseLost(
                f"the migration lease ran out and another migrator took it over ({describe_safely(self.connection)}); "
                "the running revision was rolled back and nothing more was committed here; "
                f"raise --lease if a migrator may pause longer than it (default {DEFAULT_LEASE_SECONDS:g}s)"
            )


def describe_safely(connection: Connection) -> str:
    try:
        connection.rollback()
        return describe(connection)
    except Exception:  # noqa: BLE001 - the message must not fail
        return "its holder is unknown"


@contextlib.contextmanager
def lease_lock(connection: Connection, db: Database, seconds: float, advisory_key: int,
               wait: Callable[..., None]) -> Iterator[LeaseSession]:
    """Hold the lease for the block: taken (``wait(try_take, describe_holder)`` polls up
    to the lock timeout), renewed by a heartbeat, released at the end (left to run out
    if the connection is gone)."""
    ensure_table(connection, db.schema)
    owner = secrets.token_hex(16)
    wait(lambda: try_take(connection, owner, seconds, advisory_key), lambda: describe(connection))
    heartbeat = Heartbeat(db, owner, seconds)
    heartbeat.start()
    try:
        yield LeaseSession(connection, owner, seconds)
    finally:
        heartbeat.stopping.set()
        heartbeat.join(timeout=5)
        release(connection, owner)
