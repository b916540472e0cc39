"""Long data migrations in revision scripts: batched, resumable, visible.

Inside a revision's ``upgrade()``::

    import sqlalchemy as sa
    from alembic import op
    from mypkg.batch import backfill, resuming

    def upgrade() -> None:
        if not resuming():          # an interrupted run already committed this
            op.add_column("note", sa.Column("slug", sa.String(200)))
        backfill("note", values={"slug": sa.func.lower(sa.column("body"))}, where="slug IS NULL")

It runs the same under ``alembic upgrade`` and ``mypkg-migrate upgrade``. See
:func:`backfill` for what it promises.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .migrate.results import BackfillProgress, BackgroundBackfill
from .migrate.data.batches import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["DEFAULT_BATCH_SIZE", "BackfillProgress", "BackgroundBackfill", "backfill", "background", "cancel", "pause",
           "require_backfilled", "resume", "resuming", "run_background"]


def backfill(
    table: str | sa.Table,
    values: Mapping[str, Any],
    where: str | sa.ColumnElement[bool] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    background: bool = False,
) -> int:
    """Set ``values`` on the rows of ``table`` matching ``where``, ``batch_size`` rows of
    primary key at a time, each batch in its own transaction; returns the rows updated.

    - The revision's transaction commits first: the DDL before the backfill is in place,
      and the revision is not atomic any more (as with Alembic's autocommit block).
    - Each batch commits with the backfill's ledger row (rows done, of how many, last
      key). Interrupted (killed, a failed batch, a lost connection), every committed batch
      stays and ``status`` shows the backfill; the next ``upgrade`` runs the revision again
      and the backfill continues after the last key. Statements before it run again too:
      guard them with :func:`resuming`, or put them in the revision before.
    - ``where`` (SQL text or a SQLAlchemy expression) should select only the rows still to
      do (``"slug IS NULL"``): then running it twice changes nothing.
    - ``values`` maps column names to values or SQL expressions (``sa.column("body")``
      names a column of the row). ``table`` needs a single-column primary key. Memory stays
      constant: no row is fetched into Python.
    - Progress: ``on_progress`` if given; else what the runner was told (stderr for the
      command, ``-q`` silences it; the API's ``on_progress``); under plain ``alembic``, stderr.
    - With ``--sql`` (offline), one plain ``UPDATE``.
    - ``background=True``: with more than one batch to do, the work is queued (in the
      revision's transaction) and ``upgrade`` goes on at once; workers run it
      (``mypkg-migrate backfill run``, :func:`run_background`) batch by batch, throttled, and
      a later revision can wait for it (:func:`require_backfilled`). ``values`` and ``where``
      are then compiled to the database's SQL. One batch or less runs at once, as without it:
      a new database (or a checkpoint's replay) never waits for a worker.

    SQLite, PostgreSQL and MySQL/MariaDB.
    """
    from alembic import op

    from .migrate.data import batches as machinery

    return machinery.run(table, values, where, batch_size, on_progress, _calling_revision(), op.get_context(),
                         background)


def require_backfilled(revision: str) -> None:
    """In a revision's ``upgrade()``: stop here (the revision rolled back, the database left at
    the one before) until every background backfill ``revision`` queued is finished, naming
    it and ``backfill run``. A database where ``revision`` queued nothing (its table was
    small, or a checkpoint installed it) passes."""
    from alembic import op

    from .migrate.data import queue

    context = op.get_context()
    if context.as_sql or context.connection is None:
        return
    queue.require_finished(context.connection, revision)


def run_background(
    target: Any = None,
    *,
    once: bool = True,
    pause: float = 0.0,
    batch_seconds: float | None = None,
    replicas: Sequence[str] = (),
    max_replica_lag: float | None = None,
    max_wait: float | None = None,
    poll: float = 1.0,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> int:
    """Run the background backfills queued in the database ``target`` names (a URL, None:
    ``$MYPKG_DATABASE_URL``...), batch by batch, as ``mypkg-migrate backfill run`` does;
    returns the rows updated. ``once``: until none is queued (paused and failed ones left),
    else for ever, looking for new work every ``poll`` seconds.

    :param pause: seconds between batches.
    :param batch_seconds: adapt each backfill's batch size so a batch takes about this long.
    :param replicas: replica URLs; before each batch, wait while one lags more than
        ``max_replica_lag`` seconds or cannot be read (never unthrottled), at most
        ``max_wait`` seconds at a time (None: for ever).
    :raises MigrateError: a batch failed (rolled back, the backfill marked failed; the
        others ran), or the replicas stayed behind for ``max_wait``.
    """
    from .migrate.data import worker
    from .migrate.database.target import resolve
    from .migrate.errors import MigrateError

    throttle = worker.Throttle(pause, batch_seconds, tuple(replicas), max_replica_lag, max_wait, poll)
    if replicas and max_replica_lag is None:
        from .migrate.errors import UsageError

        raise UsageError("replicas are read to keep their lag under max_replica_lag: give it")
    outcome = worker.run_on(resolve(target), throttle, once=once, on_progress=on_progress, on_wait=on_wait)
    if outcome.failed:
        raise MigrateError(f"background backfill {', '.join(outcome.failed)} failed (rolled back, marked failed; "
                           f"{outcome.rows} rows updated by the others): backfill status tells why")
    return outcome.rows


def background(target: Any = None) -> list[BackgroundBackfill]:
    """Every background backfill of the database, finished ones too, oldest first."""
    from .migrate.data import queue

    with _connected(target, will_write=False) as connection:
        return [queued.shown() for queued in queue.every(connection)]


def pause(name: str, target: Any = None) -> list[BackgroundBackfill]:
    """Stop the workers taking ``name`` (``REV`` or ``REV:TABLE``) after their batch."""
    return _change(target, name, "pause")


def resume(name: str, target: Any = None) -> list[BackgroundBackfill]:
    """Queue ``name`` again: paused, failed (after fixing why) or cancelled."""
    return _change(target, name, "resume")


def cancel(name: str, target: Any = None) -> list[BackgroundBackfill]:
    """Give ``name`` up: no worker takes it; the rows done stay; resume takes it up again."""
    return _change(target, name, "cancel")


def _change(target: Any, name: str, action: str) -> list[BackgroundBackfill]:
    from .migrate.data import queue

    with _connected(target, will_write=True) as connection:
        return [queued.shown() for queued in queue.change(connection, name, action)]


def _connected(target: Any, *, will_write: bool) -> Any:
    from .migrate.database import connections
    from .migrate.database.target import resolve

    return connections.connect(resolve(target), will_write=will_write)


def resuming() -> bool:
    """True when this revision's earlier run stopped part way through its backfill: the
    statements before it committed then and must not run again."""
    from alembic import op

    from .migrate.data import batches as machinery

    return machinery.resuming(_calling_revision(), op.get_context())


def _calling_revision() -> str:
    """The ``revision`` of the script calling us: Alembic's scripts declare it at module
    level, and both commands run the same scripts, so no argument is needed."""
    frame = sys._getframe(2)
    while frame is not None:
        revision = frame.f_globals.get("revision")
        if isinstance(revision, str) and "down_revision" in frame.f_globals:
            return revision
        frame = frame.f_back  # type: ignore[assignment]
    from .migrate.errors import UsageError

    raise UsageError("backfill() and resuming() are for revision scripts: call them from upgrade() or downgrade()")
