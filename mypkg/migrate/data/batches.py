"""Batched, resumable data migrations: the machinery behind :func:`mypkg.batch.backfill`.

One ``UPDATE`` over millions of rows holds its locks for the whole statement, shows
nothing while it runs and starts over after a crash. A backfill instead walks the table
by primary key (keyset: each batch is the next ``batch_size`` keys after the last one
done), one transaction per batch, so a batch holds its row locks briefly, an
interrupted run keeps every committed batch, and the next run continues after the last
key recorded. ``where`` selects the rows still to do, which makes a re-run idempotent.

Each batch's transaction also updates the backfill's ledger row (outcome
``backfilling``: rows done, of how many, the last key), so progress and the data
commit together; ``status`` shows it. The row outlives the last batch until the
revision itself commits (:func:`.ledger.clear_backfills`, in that transaction): a revision
stopped after its backfill (building an index, say) is still resumable.
Before the first batch, the revision's own transaction commits (Alembic's autocommit
block): the DDL before the backfill is in place for the batches.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import events
from ..database import ledger
from ..errors import MigrateError
from ..results import BACKFILLING, BackfillProgress

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import Connection

DEFAULT_BATCH_SIZE = 10_000
#: The Alembic config attribute the runner sets to a progress callback (or None: silent).
PROGRESS_ATTRIBUTE = "on_backfill_progress"


def run(
    table: str | sa.Table,
    values: Mapping[str, Any],
    where: str | sa.ColumnElement[bool] | None,
    batch_size: int,
    on_progress: Callable[[BackfillProgress], None] | None,
    revision: str,
    context: MigrationContext,
    background: bool = False,
) -> int:
    """See :func:`mypkg.batch.backfill`; returns the rows this run updated (0 when queued)."""
    import sqlalchemy as sa

    if batch_size < 1:
        raise MigrateError(f"backfill batch_size must be at least 1, not {batch_size}")
    if not values:
        raise MigrateError("backfill needs values: the columns to set")
    condition = sa.text(where) if isinstance(where, str) else where
    if context.as_sql:
        # Offline SQL is read and run by a person or a pipeline: one plain statement, after
        # the revision's COMMIT as at run time (and as lint reads it: not data with DDL).
        with context.autocommit_block():
            context.impl.execute(_update(_table(table, None), values, condition))
        return 0
    if background and _queued(context, table, values, condition, batch_size, revision):
        return 0
    report = _reporter(context, on_progress)
    with context.autocommit_block():  # commits the revision's work so far: the DDL before
        connection = context.connection
        assert connection is not None
        target = _table(table, connection)
        key = _primary_key(target)
        found = _progress_row(connection, revision, target.name)
        done, last = (0, None) if found is None else found[1:]
        remaining = connection.execute(
            sa.select(sa.func.count()).select_from(target).where(*_after(key, last), *_as_list(condition))
        ).scalar_one()
        progress = BackfillProgress(revision, target.name, done, done + remaining, last, 0.0, done)
        # Written afresh (an interrupted run's row carried over), so it is the revision's
        # newest row: on MySQL a newer "running" row would say the revision needs repair.
        row_id = _start(connection, progress, replaces=found[0] if found else None)
        started = time.perf_counter()
        while True:
            upper = connection.execute(
                sa.select(key).where(*_after(key, last)).order_by(key).offset(batch_size - 1).limit(1)
            ).scalar()
            bounds = [*_after(key, last), *([key <= upper] if upper is not None else [])]
            with batch(connection):
                changed = connection.execute(_update(target, values, condition, bounds)).rowcount
                done, last = done + max(changed, 0), upper if upper is not None else last
                # Kept after the last batch too: the revision's statements after backfill()
                # (an index on millions of rows: minutes) may still be stopped, and the next
                # run must know to skip what came before. It goes with the revision's commit.
                _save(connection, row_id, target.name, done, max(progress.total, done), last)
            progress = progress._replace(done=done, last_key=last, seconds=time.perf_counter() - started,
                                         total=max(progress.total, done))
            report(progress, upper is None)
            if upper is None:
                return done - progress.resumed_at


def _queued(context: MigrationContext, table: str | sa.Table, values: Mapping[str, Any],
            condition: sa.ColumnElement[bool] | None, batch_size: int, revision: str) -> bool:
    """A background backfill: queued for the workers, in the revision's transaction, when
    more than one batch is to do; False (run it now, as a foreground one) otherwise: a new
    database, a checkpoint's replay, a small table never wait for a worker."""
    import sqlalchemy as sa

    from . import queue

    connection = context.connection
    assert connection is not None
    target = _table(table, connection)
    key = _primary_key(target)
    remaining = connection.execute(sa.select(sa.func.count()).select_from(target).where(*_as_list(condition))
                                   ).scalar_one()
    if remaining <= batch_size:
        return False
    # The worker runs the very statement, in this database's own SQL.
    update = queue.plain_sql(connection, _update(target, values, None))
    where = None if condition is None else queue.plain_sql(connection, condition)
    if not ledger.has(connection):  # a database migrated by plain ``alembic`` so far
        ledger.table().create(connection)
    queue.enqueue(connection, revision, target.name, key.name, update, where, batch_size, 0, remaining)
    events.emit(events.BACKFILL, revision=revision, table=target.name, done=0, total=remaining, seconds=0.0,
                finished=False)
    return True


def resuming(revision: str, context: MigrationContext) -> bool:
    """Whether ``revision`` stopped part way through a backfill, so its statements before
    the backfill already committed (see :func:`mypkg.batch.resuming`)."""
    connection = context.connection
    if context.as_sql or connection is None or not _has_ledger(connection):
        return False
    return any(row.revision == revision for row in interrupted(connection))


def interrupted(connection: Connection) -> list[BackfillProgress]:
    """Every backfill stopped part way, as recorded in the ledger."""
    return [progress for _, progress in _progress_rows(connection)]


def _progress_rows(connection: Connection, revision: str | None = None) -> list[tuple[int, BackfillProgress]]:
    """(ledger row id, progress) of each ``backfilling`` row, oldest first; of ``revision`` only if given."""
    import sqlalchemy as sa

    table = ledger.table()
    query = sa.select(table.c.id, table.c.revision, table.c.detail).where(table.c.outcome == BACKFILLING)
    if revision is not None:
        query = query.where(table.c.revision == revision)
    found = []
    for row_id, row_revision, detail in connection.execute(query.order_by(table.c.id)).all():
        saved = json.loads(detail or "{}")
        found.append((row_id, BackfillProgress(row_revision, saved.get("table", "?"), int(saved.get("done", 0)),
                                               saved.get("total", 0), saved.get("last_key"))))
    return found


def _table(table: str | sa.Table, connection: Connection | None) -> sa.Table:
    import sqlalchemy as sa

    if isinstance(table, sa.Table):
        return table
    if connection is None:  # offline: no database to reflect
        return sa.table(table)  # type: ignore[return-value]
    try:
        return sa.Table(table, sa.MetaData(), autoload_with=connection)
    except sa.exc.NoSuchTableError:
        raise MigrateError(f"backfill: no table {table!r}") from None


def _primary_key(table: sa.Table) -> sa.Column[Any]:
    columns = list(table.primary_key.columns)
    if len(columns) != 1:
        raise MigrateError(
            f"backfill walks a table by its primary key: {table.name} has "
            f"{'none' if not columns else f'{len(columns)} columns in it'}; it needs exactly one"
        )
    return columns[0]


def _after(key: sa.Column[Any], last: object) -> list[sa.ColumnElement[bool]]:
    return [] if last is None else [key > last]


def _as_list(condition: sa.ColumnElement[bool] | None) -> list[sa.ColumnElement[bool]]:
    return [] if condition is None else [condition]


def _update(
    table: sa.Table, values: Mapping[str, Any], condition: sa.ColumnElement[bool] | None,
    bounds: list[sa.ColumnElement[bool]] | None = None,
) -> Any:
    import sqlalchemy as sa

    if not len(table.c):  # offline: a lightweight table of just the columns set
        table = sa.table(table.name, *(sa.column(name) for name in values))  # type: ignore[assignment]
    unknown = [name for name in values if name not in table.c]
    if unknown:
        raise MigrateError(f"backfill: {table.name} has no column {unknown[0]!r}")
    return sa.update(table).values(dict(values)).where(*(bounds or []), *_as_list(condition))


class batch:
    """One batch's transaction, begun by hand: the connection is in autocommit mode.
    On SQLite, ``BEGIN IMMEDIATE`` takes the write lock first, so a busy application
    makes the batch wait (busy timeout) rather than fail at its first write."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        name = connection.dialect.name
        self.begin = "BEGIN IMMEDIATE" if name == "sqlite" else "START TRANSACTION" if name in (
            "mysql", "mariadb") else "BEGIN"

    def __enter__(self) -> None:
        self.connection.exec_driver_sql(self.begin)

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.connection.exec_driver_sql("COMMIT" if kind is None else "ROLLBACK")


def _has_ledger(connection: Connection) -> bool:
    return ledger.has(connection)


def _progress_row(connection: Connection, revision: str, table: str) -> tuple[int, int, object] | None:
    """(row id, rows done, last key) of this revision's interrupted backfill of ``table``."""
    if not _has_ledger(connection):
        return None
    for row_id, progress in _progress_rows(connection, revision):
        if progress.table == table:
            return row_id, progress.done, progress.last_key
    return None


def _start(connection: Connection, progress: BackfillProgress, *, replaces: int | None) -> int:
    if not _has_ledger(connection):  # a database migrated by plain ``alembic`` so far
        ledger.table().create(connection)
    with batch(connection):
        if replaces is not None:
            ledger.delete(connection, replaces)
        ledger.write(connection, revision=progress.revision, direction="upgrade", checksum=None,
                     started_at=ledger.now(), outcome=BACKFILLING,
                     detail=_detail(progress.table, progress.done, progress.total, progress.last_key))
    found = _progress_row(connection, progress.revision, progress.table)
    assert found is not None
    return found[0]


def _detail(table: str, done: int, total: int, last: object) -> str:
    # A key JSON cannot hold (a UUID, a date) is kept as text: the database compares it back.
    return json.dumps({"table": table, "done": done, "total": total, "last_key": last}, default=str)


def _save(connection: Connection, row_id: int, table: str, done: int, total: int, last: object) -> None:
    import sqlalchemy as sa

    rows = ledger.table()
    connection.execute(
        sa.update(rows).where(rows.c.id == row_id).values(
            detail=_detail(table, done, total, last), finished_at=ledger.now())
    )


def _reporter(
    context: MigrationContext, on_progress: Callable[[BackfillProgress], None] | None
) -> Callable[[BackfillProgress, bool], None]:
    """Who hears of each batch: the script's callback, else the runner's (the command's
    stderr line, or the API caller's callback, or nobody with ``-q``), else, under plain
    ``alembic``, a line on stderr."""
    attributes = context.config.attributes if context.config is not None else {}
    if on_progress is None and PROGRESS_ATTRIBUTE in attributes:
        on_progress = attributes[PROGRESS_ATTRIBUTE]
    elif on_progress is None:
        from .progress import StderrProgress

        on_progress = StderrProgress(sys.stderr)
    callback = on_progress

    def report(progress: BackfillProgress, finished: bool) -> None:
        events.emit(events.BACKFILL, revision=progress.revision, table=progress.table, done=progress.done,
                    total=progress.total, seconds=progress.seconds, finished=finished)
        if callback is None:
            return
        try:
            callback(progress)
        except Exception:  # noqa: BLE001 - reporting never decides a data migration
            import logging

            logging.getLogger(__name__).warning("backfill progress callback failed", exc_info=True)
        if finished and hasattr(callback, "finish"):
            callback.finish()

    return report
