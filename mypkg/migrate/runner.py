"""The run loop: apply or revert revisions under the migration lock, one transaction each.

Alembic runs the scripts; around it the runner takes the lock, re-reads where the
database is, refuses what it must (an unknown revision, changed scripts), writes a
ledger row inside each revision's transaction, retries a revision rolled back by the
statement lock timeout, and turns a failure into one line naming the revision.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from . import connections, graph, integrity, ledger, locks, scripts
from .errors import MigrateError, UsageError
from .results import AppliedRevision, MigrationResult

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy.engine import Connection

    from .target import Database

#: Bounded retry of a revision whose statement waited longer than
#: ``statement_lock_timeout`` for a table lock (PostgreSQL ``lock_timeout``).
STATEMENT_LOCK_RETRIES = 3


def _is_lock_timeout(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03"  # lock_not_available


def run(
    direction: Literal["upgrade", "downgrade"],
    db: Database,
    revision: str,
    *,
    on_applied: Callable[[AppliedRevision], None] | None,
    lock_timeout: float,
    statement_lock_timeout: float | None,
    on_wait: Callable[[str], None] | None,
    ignore_checksums: bool = False,
    backup: bool = False,
    busy_timeout: float = connections.DEFAULT_BUSY_TIMEOUT,
) -> MigrationResult:
    """Move ``db`` to ``revision``; see :func:`.commands.upgrade` for the promises."""
    from sqlalchemy import event, text

    from .backup import backup_sqlite

    graph.require_revision(revision)
    if backup and db.sqlite_path is None:
        raise UsageError("--backup copies a SQLite file; back PostgreSQL up with pg_dump")
    with locks.locked(db, lock_timeout, on_wait, busy_timeout) as connection:
        # Read only now, under the lock: the previous holder may have migrated.
        before = connections.read_current(connection)
        graph.require_known(before, db)
        if direction == "upgrade" and not ignore_checksums:
            integrity.refuse_on_problems(connection, before, db)
        plan = graph.planned(before, revision, direction)
        if direction == "upgrade" and not ignore_checksums:
            integrity.refuse_edited(plan, db)
        destination = graph.absolute(plan, direction, revision)
        # The backup comes before anything is written, the ledger table included.
        backup_path = backup_sqlite(db, before) if backup and plan else None
        ledger.ensure(connection)
        applied: list[AppliedRevision] = []
        started = [time.perf_counter(), ledger.now()]

        def mark_start(_conn: Any) -> None:
            started[:] = [time.perf_counter(), ledger.now()]

        def record(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
            # Up or down, up_revision_id names the script that just ran.
            found = graph.script(step.up_revision_id)
            entry = AppliedRevision(
                revision=step.up_revision_id,
                message=found.doc if found is not None else "",
                direction="upgrade" if step.is_upgrade else "downgrade",
                seconds=time.perf_counter() - started[0],
            )
            # Still inside the revision's transaction: the row commits with it.
            ledger.write(
                connection,
                revision=entry.revision,
                direction=entry.direction,
                # Of the file that ran, which --ignore-checksums may let differ from the manifest.
                checksum=integrity.file_checksum(found.path) if found is not None else None,
                started_at=started[1],
                outcome="applied" if step.is_upgrade else "reverted",
            )
            applied.append(entry)
            if on_applied is not None:
                on_applied(entry)

        bounded = db.is_postgresql and bool(statement_lock_timeout)
        if bounded:
            connection.execute(text(f"SET lock_timeout = '{int(statement_lock_timeout * 1000)}ms'"))
            connection.commit()
        config = scripts.make_config(connection=connection, on_version_apply=[record], with_models=False)
        event.listen(connection, "begin", mark_start)
        retries = 0
        try:
            while True:
                try:
                    _run_env(config, direction, destination)
                    break
                except Exception as exc:
                    if connection.in_transaction():
                        connection.rollback()
                    failed = plan[len(applied)] if len(applied) < len(plan) else None
                    if bounded and _is_lock_timeout(exc) and retries < STATEMENT_LOCK_RETRIES:
                        retries += 1
                        pause = 0.5 * 2 ** (retries - 1)
                        if on_wait is not None:
                            name = failed.revision if failed is not None else "a revision"
                            on_wait(
                                f"{name} waited over {statement_lock_timeout:g}s for a table "
                                f"lock and was rolled back; retry {retries} of "
                                f"{STATEMENT_LOCK_RETRIES} in {pause:g}s"
                            )
                        time.sleep(pause)
                        continue
                    _record_failure(connection, failed, direction, started[1], exc)
                    raise explain_failure(exc, failed, connection, db) from exc
        finally:
            event.remove(connection, "begin", mark_start)
            if bounded:
                with contextlib.suppress(Exception):
                    connection.execute(text("RESET lock_timeout"))
                    connection.commit()
        after = connections.read_current(connection)
    return MigrationResult(db.masked, before, after, applied, backup_path)


def _run_env(config: Any, direction: str, destination: str) -> None:
    """What ``alembic.command.upgrade``/``downgrade`` do, with the ScriptDirectory this
    process already loaded: Alembic's commands would load (import) every script again."""
    from alembic.runtime.environment import EnvironmentContext

    directory = scripts.script_directory()

    def steps(rev: Any, _context: Any) -> Any:
        if direction == "upgrade":
            return directory._upgrade_revs(destination, rev)
        return directory._downgrade_revs(destination, rev)

    with EnvironmentContext(
        config, directory, fn=steps, as_sql=False, starting_rev=None, destination_rev=destination
    ):
        directory.run_env()


def _record_failure(
    connection: Connection, failed: Script | None, direction: str, started_at: Any, exc: Exception
) -> None:
    """A failed revision rolled back with its own ledger row: record it apart."""
    if failed is None:
        return
    with contextlib.suppress(Exception):  # the connection itself may be what failed
        if connection.in_transaction():
            connection.rollback()
        ledger.write(
            connection,
            revision=failed.revision,
            direction=direction,
            checksum=integrity.shipped_checksum(failed.revision),
            started_at=started_at,
            outcome="failed",
            detail=f"{connections.error_name(exc)}: {connections.first_line(exc)}",
        )
        connection.commit()


def explain_failure(
    exc: Exception, failed: Script | None, connection: Connection, db: Database
) -> Exception:
    """One line: which revision failed, the driver's reason, where the database is now."""
    from alembic.util import CommandError

    if isinstance(exc, MigrateError):
        return exc
    reason = connections.first_line(exc)
    if isinstance(exc, CommandError) and failed is None:
        return MigrateError(reason)
    try:
        current = connections.read_current(connection)
        now = graph.describe(current[0] if current else None)
    except Exception:  # noqa: BLE001 - the connection itself may be gone
        now = "unknown"
    what = f"revision {failed.revision} ({failed.doc})" if failed is not None else "migration"
    hint = f" ({connections.LOCKED_HINT})" if connections.locked_by_another(exc) else ""
    return MigrateError(f"{what} failed: {connections.error_name(exc)}: {reason}{hint}; {db.masked} is at {now}")
