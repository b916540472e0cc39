"""PostgreSQL's view of what a move did to each table, for ``roundtrip --report``: the
strongest lock its session held per table, and which tables it rewrote (a new storage
file)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..database import connections, ledger

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

    from ..database.target import Database


#: PostgreSQL's table lock modes, weakest first.
LOCK_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
              "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


def relfilenodes(db: Database) -> dict[str, int]:
    """PostgreSQL: each table's storage file; a new one means the table was rewritten."""
    import sqlalchemy as sa

    with connections.connect(db, will_write=False) as connection:
        return dict(connection.execute(sa.text(
            "SELECT c.relname, c.relfilenode FROM pg_class c WHERE c.relkind = 'r' "
            "AND c.relnamespace = to_regnamespace(current_schema())::oid")).all())


@contextlib.contextmanager
def locks_taken(db: Database, held: dict[str, str], report: bool) -> Iterator[None]:
    """PostgreSQL, with ``report``: before each commit of the move, the table locks its
    session holds (they last to the commit), the strongest kept per table."""
    if not report or not db.is_postgresql:
        yield
        return
    import sqlalchemy as sa
    from sqlalchemy import event

    query = ("SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
             "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relkind = 'r' "
             "AND c.relnamespace = to_regnamespace(current_schema())::oid")

    def before_commit(connection: Connection) -> None:
        with contextlib.suppress(Exception):
            for table, mode in connection.exec_driver_sql(query).all():
                if table not in ledger.RUNNER_TABLES and LOCK_MODES.index(mode) >= LOCK_MODES.index(
                        held.get(table, LOCK_MODES[0])):
                    held[table] = mode

    event.listen(sa.engine.Engine, "commit", before_commit)
    try:
        yield
    finally:
        event.remove(sa.engine.Engine, "commit", before_commit)
