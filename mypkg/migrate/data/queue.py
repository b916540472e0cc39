"""Background backfills: queued by a revision, run by workers beside the deploy.

A revision calling ``backfill(..., background=True)`` on a table with more than one batch
to do queues the work instead of doing it: one ledger row (outcome ``background``) holding
the table, its key, the UPDATE's SET and WHERE as SQL of the database's own dialect, and
the progress (rows done, of how many, the last key, the time spent). ``upgrade`` goes on at
once. Workers (``backfill run``, :mod:`.worker`) take it batch by batch: each batch locks
the row, updates the next keys and the progress, and commits both together, so a worker
killed at any moment loses nothing and doubles nothing, and several workers at once take
turns on one backfill (another one's batch is skipped, never waited on) or work on
different ones. The last batch turns the row into ``backfilled``; a later revision may
require that (:func:`mypkg.batch.require_backfilled`).

States in the row: ``queued`` (a worker takes it), ``paused`` (``backfill pause``), ``failed``
(a batch failed: its error kept, ``backfill resume`` queues it again); ``cancelled`` is an
outcome of its own (``backfill cancel``), as is ``backfilled``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import MigrateError, UsageError
from ..identity import BACKGROUND, COMMAND
from ..results import BackgroundBackfill

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: Ledger outcomes: a background backfill not finished, finished, cancelled.
BACKFILLED, CANCELLED = "backfilled", "cancelled"
QUEUED, PAUSED, FAILED = "queued", "paused", "failed"


class Queued(NamedTuple):
    """One background backfill, as its ledger row holds it."""

    id: int  #: the ledger row's
    revision: str  #: the revision that queued it
    outcome: str  #: background, backfilled or cancelled
    table: str
    key: str  #: the single-column primary key it walks
    update: str  #: ``UPDATE t SET ...`` in the database's dialect
    where: str | None  #: the rows still to do, in the same dialect
    batch_size: int
    done: int
    total: int
    last_key: Any
    seconds: float  #: worker time spent on it so far
    state: str  #: queued, paused or failed (for outcome background)
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.revision}:{self.table}"

    @property
    def finished(self) -> bool:
        return self.outcome == BACKFILLED

    def shown(self) -> BackgroundBackfill:
        """As ``status`` and the API show it."""
        state = "finished" if self.finished else "cancelled" if self.outcome == CANCELLED else self.state
        return BackgroundBackfill(self.name, self.revision, self.table, state, self.done, self.total, self.seconds,
                                  self.error)


def plain_sql(connection: Connection, clause: Any) -> str:
    """``clause`` as this database's SQL with its values written in: what a worker runs as it
    is, with no parameters (so no ``%`` doubled for the driver, no ``:name`` read as one).

    :raises MigrateError: a value that cannot be written as SQL."""
    import sqlalchemy as sa

    dialect = type(connection.dialect)(paramstyle="named")
    try:
        return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except (sa.exc.CompileError, NotImplementedError, TypeError) as exc:
        raise MigrateError(f"a background backfill runs SQL the worker can run as it is: {exc}") from None


def detail(queued: Queued) -> str:
    fields = queued._asdict()
    for gone in ("id", "revision", "outcome"):
        fields.pop(gone)
    return json.dumps(fields, default=str)  # a key JSON cannot hold (a UUID, a date) kept as text


def _from_row(row_id: int, revision: str, outcome: str, text: str | None) -> Queued | None:
    try:
        saved = json.loads(text or "{}")
        return Queued(row_id, revision, outcome, saved["table"], saved["key"], saved["update"], saved.get("where"),
                      int(saved["batch_size"]), int(saved["done"]), int(saved["total"]), saved.get("last_key"),
                      float(saved.get("seconds", 0.0)), saved.get("state", QUEUED), saved.get("error"))
    except (ValueError, KeyError, TypeError):
        return None  # a row edited by hand: named by status, never run


def every(connection: Connection, *, unfinished_only: bool = False) -> list[Queued]:
    """Every background backfill of the database, oldest first."""
    import sqlalchemy as sa

    from ..database import ledger

    if not ledger.has(connection):
        return []
    table = ledger.table()
    outcomes = [BACKGROUND] if unfinished_only else [BACKGROUND, BACKFILLED, CANCELLED]
    rows = connection.execute(sa.select(table.c.id, table.c.revision, table.c.outcome, table.c.detail)
                              .where(table.c.outcome.in_(outcomes)).order_by(table.c.id)).all()
    return [found for row in rows if (found := _from_row(*row)) is not None]


def enqueue(connection: Connection, revision: str, table: str, key: str, update: str, where: str | None,
            batch_size: int, done: int, total: int) -> None:
    """Record a backfill for the workers, in the revision's transaction (it commits with it);
    a revision run again replaces its unfinished row of the same table."""
    from ..database import ledger

    for old in every(connection, unfinished_only=True):
        if old.revision == revision and old.table == table:
            ledger.delete(connection, old.id)
    queued = Queued(0, revision, BACKGROUND, table, key, update, where, batch_size, done, total, None, 0.0, QUEUED)
    ledger.write(connection, revision=revision, direction="upgrade", checksum=None, started_at=ledger.now(),
                 outcome=BACKGROUND, detail=detail(queued))


def save(connection: Connection, queued: Queued) -> None:
    """Write ``queued``'s progress, state and outcome, in the connection's transaction."""
    import sqlalchemy as sa

    from ..database import ledger

    rows = ledger.table()
    connection.execute(sa.update(rows).where(rows.c.id == queued.id).values(
        outcome=queued.outcome, detail=detail(queued), finished_at=ledger.now()))


def locked(connection: Connection, row_id: int) -> Queued | None:
    """In the batch's transaction: the row, locked for it; None when another worker's batch
    holds it (skipped, never waited for) or it is gone. SQLite's ``BEGIN IMMEDIATE`` has
    serialised the batches already."""
    import sqlalchemy as sa

    from ..database import ledger

    table = ledger.table()
    query = sa.select(table.c.id, table.c.revision, table.c.outcome, table.c.detail).where(table.c.id == row_id)
    if connection.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    row = connection.execute(query).first()
    return None if row is None else _from_row(*row)


def named(connection: Connection, name: str) -> list[Queued]:
    """The backfills ``name`` means: ``REV`` (every table it queued) or ``REV:TABLE``; a
    revision id's prefix does.

    :raises UsageError: none matches.
    """
    revision, _, table = name.partition(":")
    found = [q for q in every(connection) if q.revision.startswith(revision) and table in ("", q.table)]
    if not revision or not found:
        known = ", ".join(q.name for q in every(connection)) or "none queued"
        raise UsageError(f"no background backfill {name!r} (known: {known})")
    return found


def change(connection: Connection, name: str, action: str) -> list[Queued]:
    """``pause``, ``resume`` or ``cancel`` the backfills ``name`` means; returns them changed.

    :raises MigrateError: a finished one cannot change.
    """
    changed = []
    for queued in named(connection, name):
        if queued.finished:
            raise MigrateError(f"{queued.name} is finished: nothing to {action}")
        if action == "pause":
            queued = queued._replace(outcome=BACKGROUND, state=PAUSED)
        elif action == "resume":
            queued = queued._replace(outcome=BACKGROUND, state=QUEUED, error=None)
        else:
            queued = queued._replace(outcome=CANCELLED)
        save(connection, queued)
        changed.append(queued)
    connection.commit()
    return changed


def require_finished(connection: Connection, revision: str) -> None:
    """:raises MigrateError: a backfill ``revision`` queued is not finished (named, with the
    way to finish it)."""
    for queued in every(connection):
        if queued.revision != revision or queued.finished:
            continue
        what = "was cancelled" if queued.outcome == CANCELLED else \
            f"is {queued.state} at {queued.done:,} of {queued.total:,} rows"
        way = f"{COMMAND} backfill resume {queued.name}, then " if queued.outcome == CANCELLED or queued.state != \
            QUEUED else ""
        raise MigrateError(f"it needs the background backfill {queued.name} finished, which {what}: {way}"
                           f"{COMMAND} backfill run --once (or its worker) finishes it; then upgrade again")
