"""Where a database stands: what :func:`.commands.status` answers on the full path."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from ..database import connections, ledger, locks, tenants
from ..database.target import resolve
from ..history import graph
from ..errors import MigrateError
from ..identity import COMMAND
from ..results import BackfillProgress, BackgroundBackfill, Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..database.target import Database, Target


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


def wait_for_head(
    target: Target = None,
    timeout: float = 60.0,
    *,
    poll: float = 0.5,
    on_wait: Callable[[Status], None] | None = None,
    phase: Literal["pre", "post"] | None = None,
) -> Status:
    """Poll until the database is at head, for replicas that wait for a migrator; with
    ``phase="pre"``, until no pre-deploy revision is pending (the new release's gate).

    :raises MigrateError: still behind after ``timeout`` seconds.
    """
    db = resolve(target)
    deadline = time.monotonic() + timeout
    told = False
    while True:
        state = read_status(db)
        if state.ready_for(phase):
            return state
        if time.monotonic() >= deadline:
            behind = len(state.pending_in("pre")) if phase == "pre" else len(state.pending)
            raise MigrateError(
                f"{state.database} is still {behind} {'pre-deploy ' if phase == 'pre' else ''}revision(s) behind "
                f"head after {timeout:g}s: is a migrator running ({COMMAND} upgrade{' --phase pre' if phase == 'pre' else ''})?"
            )
        if on_wait is not None and not told:
            on_wait(state)
            told = True
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
