"""The background backfills' worker: batch after batch, throttled by the database's health.

``mypkg-migrate backfill run`` (a Kubernetes Job with ``--once``, or a long-running
Deployment) takes the queued backfills (:mod:`.queue`) of one database, one batch at a time:

- each batch locks its backfill's ledger row, updates the next keys and the progress, and
  commits both together: killed at any moment, nothing is lost or done twice; a batch
  another worker's transaction holds is skipped, never waited for;
- between batches: ``pause`` seconds; then, with replicas, it waits while any of them lags
  more than ``max_lag`` seconds (:mod:`.replicas`), and while one cannot be read (never
  unthrottled), telling why; ``max_wait`` bounds that wait;
- ``batch_seconds``: each backfill's batch size is adapted (at most halved or doubled per
  batch) so that a batch takes about that long;
- a batch that fails marks its backfill ``failed`` with the error and the worker goes on
  with the others; ``backfill resume`` queues it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .. import events
from ..errors import MigrateError
from ..identity import COMMAND
from ..results import BackfillProgress
from . import queue

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..database.target import Database


class Throttle(NamedTuple):
    pause: float = 0.0  #: seconds between batches
    batch_seconds: float | None = None  #: the batch size adapted to take about this long
    replicas: tuple[str, ...] = ()  #: replica URLs whose lag is read before each batch
    max_lag: float | None = None  #: seconds of lag above which the worker waits
    max_wait: float | None = None  #: the longest it waits for the replicas at a time (None: for ever)
    poll: float = 1.0  #: how often it reads them while it waits, and looks for new work


class Outcome(NamedTuple):
    rows: int  #: rows updated by this worker
    finished: tuple[str, ...]  #: backfills it finished
    failed: tuple[str, ...]  #: backfills whose batch failed (marked ``failed``)


def run_on(db: Database, throttle: Throttle, *, once: bool,
           on_progress: Callable[[BackfillProgress], None] | None = None,
           on_wait: Callable[[str], None] | None = None) -> Outcome:
    """:func:`run` on a connection of its own to ``db`` (a tenant's schema too), each batch a
    transaction it begins and commits itself."""
    from ..database import connections
    from ..history.manifest import load

    with connections.connect(db, will_write=True) as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")

        def applied() -> set[str]:  # read again each round: a deploy may move it
            return set(load().ancestors(connections.read_current(connection)))

        return run(connection, throttle, once=once, applied=applied, on_progress=on_progress, on_wait=on_wait)


def run(connection: Connection, throttle: Throttle, *, once: bool, applied: Callable[[], set[str]],
        on_progress: Callable[[BackfillProgress], None] | None = None,
        on_wait: Callable[[str], None] | None = None) -> Outcome:
    """Work until nothing is queued (``once``), else for ever (a stop ends it: SIGTERM rolls
    the batch under way back). ``applied()``: the revisions the database is at and below, read
    once a round (a backfill whose revision was reverted since is left alone)."""
    from .replicas import Replicas

    sizes: dict[int, int] = {}
    rows, finished, failed = 0, [], []
    replicas = Replicas(throttle.replicas, throttle.max_lag, throttle.max_wait, throttle.poll, on_wait)
    try:
        while True:
            queued_now = [q for q in queue.every(connection, unfinished_only=True) if q.state == queue.QUEUED]
            reached = applied() if queued_now else set()
            runnable = [q for q in queued_now if q.revision in reached]
            connection.commit()
            if not runnable:
                if once:
                    return Outcome(rows, tuple(finished), tuple(failed))
                time.sleep(throttle.poll)
                continue
            progressed = False
            for queued in runnable:
                replicas.wait_until_caught_up()
                try:
                    done = _one_batch(connection, queued.id, sizes, throttle.batch_seconds, on_progress)
                except MigrateError as exc:
                    failed.append(queued.name)
                    if on_wait is not None:
                        on_wait(f"{queued.name}: {exc}; {COMMAND} backfill resume {queued.name} after fixing it")
                    continue
                if done is None:
                    continue  # another worker's batch holds it, or it changed state
                progressed = True
                rows += done[0]
                if done[1]:
                    finished.append(queued.name)
                if throttle.pause:
                    time.sleep(throttle.pause)
            if not progressed:  # every one held by other workers' batches: not a busy loop
                time.sleep(throttle.poll)
    finally:
        replicas.close()


def _one_batch(connection: Connection, row_id: int, sizes: dict[int, int], batch_seconds: float | None,
           on_progress: Callable[[BackfillProgress], None] | None) -> tuple[int, bool] | None:
    """One batch of one backfill, in one transaction with its progress: (rows, finished),
    or None when it is not this worker's to run now.

    :raises MigrateError: the batch failed (rolled back; the backfill marked failed)."""
    from .batches import batch as transaction

    started = time.perf_counter()
    try:
        with transaction(connection):
            queued = queue.locked(connection, row_id)
            if queued is None or queued.outcome != queue.BACKGROUND or queued.state != queue.QUEUED:
                return None
            size = sizes.setdefault(row_id, queued.batch_size)
            upper, changed = _update(connection, queued, size)
            seconds = time.perf_counter() - started
            queued = queued._replace(done=queued.done + changed, total=max(queued.total, queued.done + changed),
                                     last_key=upper if upper is not None else queued.last_key,
                                     seconds=queued.seconds + seconds,
                                     outcome=queue.BACKFILLED if upper is None else queue.BACKGROUND)
            queue.save(connection, queued)
    except MigrateError:
        raise
    except Exception as exc:  # the batch rolled back: its error kept on the backfill, in a transaction of its own
        from ..database.connections import first_line

        reason = first_line(exc)
        with transaction(connection):
            current = queue.locked(connection, row_id)
            if current is not None:
                queue.save(connection, current._replace(state=queue.FAILED, error=reason))
        raise MigrateError(f"a batch failed and was rolled back: {reason}") from exc
    if batch_seconds:  # about batch_seconds a batch: at most halved or doubled each time
        factor = min(2.0, max(0.5, batch_seconds / max(seconds, 1e-3)))
        sizes[row_id] = max(1, int(size * factor))
    progress = BackfillProgress(queued.revision, queued.table, queued.done, queued.total, queued.last_key,
                                queued.seconds, 0)
    events.emit(events.BACKFILL, revision=queued.revision, table=queued.table, done=queued.done,
                total=queued.total, seconds=queued.seconds, finished=queued.finished, batch=size,
                batch_seconds=seconds)
    if on_progress is not None:
        on_progress(progress)
        if queued.finished and hasattr(on_progress, "finish"):
            on_progress.finish()
    return changed, queued.finished


def _update(connection: Connection, queued: queue.Queued, size: int) -> tuple[object, int]:
    """The next ``size`` keys after the last one done: (the batch's upper key, or None for
    the last batch; rows changed)."""
    import sqlalchemy as sa

    key = sa.column(queued.key)
    after = [] if queued.last_key is None else [key > queued.last_key]
    upper = connection.execute(sa.select(key).select_from(sa.table(queued.table)).where(*after).order_by(key)
                               .offset(size - 1).limit(1)).scalar()
    bounds = after + ([key <= upper] if upper is not None else [])
    where = [f"({queued.where})"] * (queued.where is not None) + [queue.plain_sql(connection, b) for b in bounds]
    # As it is: no parameters, so the driver reads no placeholder in it (a '%' in a literal).
    changed = connection.exec_driver_sql(queued.update + (f" WHERE {' AND '.join(where)}" if where else ""),
                                         execution_options={"no_parameters": True})
    return upper, max(changed.rowcount, 0)
