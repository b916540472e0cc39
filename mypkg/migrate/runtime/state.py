"""Where a database stands: what :func:`.commands.status` answers on the full path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..database import connections, ledger, locks, tenants
from ..history import graph
from ..results import BackfillProgress, BackgroundBackfill, Status

if TYPE_CHECKING:
    from ..database.target import Database


def read_status(db: Database) -> Status:
    """Applied and pending revisions, the repairs awaited and the data migrations stopped.

    :raises MigrateError: unreachable, or at a revision this package does not know.
    """
    connections.check_sqlite_file(db, will_write=False)  # a missing directory is not "empty"
    now: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    stopped: tuple[BackfillProgress, ...] = ()
    queued: tuple[BackgroundBackfill, ...] = ()
    if not tenants.missing(db):
        with connections.connect(db, will_write=False) as connection:
            now = connections.read_current(connection)
            graph.require_known(now, db.masked, lambda unknown: ledger.plugins_of(connection, unknown))
            if db.is_mysql:  # only there can a revision fail part way
                from .repair import pending_repairs

                alive = locks.mysql_migrator_alive(connection)  # its revision is running, not stranded
                waiting = tuple(pending_repairs(connection, migrator_alive=alive))
            if ledger.exists(connection):
                from ..data import queue
                from ..data.batches import interrupted

                stopped = tuple(interrupted(connection))
                queued = tuple(found.shown() for found in queue.every(connection, unfinished_only=True))
    applied_ids = graph.ancestors(now)
    # Of revisions still to apply: a stamp past one leaves its row behind.
    stopped = tuple(row for row in stopped if row.revision not in applied_ids)
    everything = graph.history()
    return Status(
        database=db.masked,
        current=now,
        heads=graph.heads(),
        applied=[rev for rev in everything if rev.revision in applied_ids],
        pending=[rev for rev in everything if rev.revision not in applied_ids],
        needs_repair=waiting,
        interrupted=stopped,
        background=queued,
    )
