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

from .. import events
from ..database import connections, lease, ledger, locks, tenants
from ..database.settings import statement_lock_timeout_ms
from ..errors import MigrateError, UsageError
from ..history import branches, graph, phases, scripts
from ..history.manifest import load as load_manifest
from ..identity import COMMAND
from ..results import AppliedRevision, BackfillProgress, MigrationResult
from ..data import batches as backfill
from . import checkpoint, environment, integrity, repair
from .failures import explain_failure
from .tracker import Tracker, tell_applied

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy.engine import Connection

    from ..database.target import Database

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
    busy_timeout: float | None = None,
    adopt: Callable[[Connection, Database], None] | None = None,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    use_checkpoints: bool = True,
    phase: str | None = None,
    reviewed: Callable[[tuple[str, ...], list[Script]], None] | None = None,
) -> MigrationResult:
    """Move ``db`` to ``revision``; see :func:`.commands.upgrade` for the promises.
    ``phase`` ``"pre"``: to the newest pending pre-deploy revisions instead (:mod:`.phases`).
    ``reviewed(before, pending)``: under the lock, before anything is written; raises to
    refuse (``upgrade --plan``: the database moved since the plan was made)."""
    from sqlalchemy import event

    from ..database.backup import backup_sqlite

    graph.require_revision(revision)
    if statement_lock_timeout is not None:
        statement_lock_timeout_ms(statement_lock_timeout)  # a usage error before anything connects
    if backup and db.sqlite_path is None:
        tool = "mariadb-dump (mysqldump)" if db.is_mysql else "pg_dump" if db.is_postgresql else "its own tools"
        raise UsageError(f"--backup copies a SQLite file; back {db.backend} up with {tool}")
    if direction == "upgrade":
        tenants.create_database(db)  # MySQL: a new tenant's database, before connecting to it
    with locks.locked(db, lock_timeout, on_wait, busy_timeout) as (connection, session), \
            contextlib.ExitStack() as narrowed:
        if direction == "upgrade":
            tenants.create_schema(connection, db)  # PostgreSQL: a new tenant's schema
        # Read only now, under the lock: the previous holder may have migrated.
        before = connections.read_current(connection)
        graph.require_known(before, db.masked, lambda unknown: ledger.plugins_of(connection, unknown))
        before = connections.complete_version_rows(connection, before)
        if db.is_mysql:
            checkpoint.recover_interrupted(connection, before)
            repair.refuse_while_partial(connection, db)
        if direction == "upgrade" and not before:
            before = _adopt_or_refuse(connection, db, adopt)
        if direction == "upgrade" and not ignore_checksums:
            integrity.refuse_on_problems(connection, before, db)
        if phase == phases.PRE and before:  # an empty database runs no release yet: it takes all
            revision = phases.pre_deploy_destination(load_manifest(), before)  # type: ignore[assignment]
        if reviewed is not None:  # nothing written yet: the baseline a plan refuses is its only writer above
            reviewed(tuple(before), graph.planned(before, revision, direction, strict=True))
        fresh = checkpoint.route(connection, revision) if direction == "upgrade" and not before and use_checkpoints \
            else None
        if fresh is not None:  # Alembic needs only the revisions after the checkpoint
            narrowed.enter_context(scripts.restricted(fresh.checkpoint.revision, fresh.keep, fresh.covered))
        if direction == "downgrade":
            branches.refuse_ambiguous_step(before, revision)
        plan = graph.planned(before, revision, direction, strict=True)
        if direction == "downgrade":
            branches.refuse_dependents(plan, revision)  # NAME@base: only NAME's own tables
        if plan:  # the runner does not import the models: their convention read from their source
            environment.require_models_convention()
        if direction == "upgrade" and not ignore_checksums:
            integrity.refuse_edited(plan, db)
        destination = graph.absolute(plan, direction, revision)
        # The backup comes before anything is written, the ledger table included.
        backup_path = backup_sqlite(db, before) if backup and plan else None
        if backup_path is not None:  # a failure from here on names it: that is when it is needed
            narrowed.enter_context(_naming_backup(backup_path))
        # An empty database past a checkpoint installs it in one step (refused before
        # anything is written if its file was edited).
        found = fresh.checkpoint if fresh is not None else \
            checkpoint.choose(connection, plan) if direction == "upgrade" and use_checkpoints and not before else None
        if found is not None:
            checkpoint.refuse_edited(found, db.masked)
        ledger.ensure(connection)
        installed = []
        if found is not None:
            events.emit(events.REVISION_START, revision=found.revision, message=checkpoint.describe(found),
                        direction="upgrade", plugin=None, phase=None)
            installed.append(checkpoint.install(connection, db, found))
            tell_applied(installed[0], on_applied)
            plan = graph.planned((found.revision,), revision, direction, strict=True)
        scripts.as_if_new(plan)  # each run sees its scripts as a process of its own would
        tracker = Tracker(connection, session, on_applied, _settings_for(connection, db, statement_lock_timeout),
                           running=[script.revision for script in plan] if db.is_mysql else None,
                           direction=direction, plan=plan)
        config = scripts.make_config(connection=connection, on_version_apply=[tracker.record], with_models=False,
                                     **{backfill.PROGRESS_ATTRIBUTE: on_progress})
        event.listen(connection, "begin", tracker.begin)
        event.listen(connection, "before_cursor_execute", tracker.statement)
        event.listen(connection, "after_cursor_execute", tracker.statement_done)
        retries = 0
        try:
            while True:
                try:
                    try:
                        _run_env(config, direction, destination)
                    except SystemExit as exit_:  # a script's sys.exit(): a failure like any other
                        raise ScriptExited(f"the script called sys.exit({exit_.code!r})") from exit_
                    tracker.committed()
                    break
                except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM unwound like it
                    tracker.stopped = True
                    told = _interrupted(stop, connection, db, plan, tracker, direction)
                    tracker.failed(f"{'terminated' if type(stop).__name__ == 'Terminated' else 'interrupted'}: {told}")
                    raise told from None
                except Exception as exc:
                    _release_script_locals(exc)
                    if connection.in_transaction():
                        connection.rollback()
                    tracker.rolled_back()
                    failed = plan[len(tracker.applied)] if len(tracker.applied) < len(plan) else None
                    switch = getattr(tracker.session, "to_lease", None)
                    if isinstance(exc, locks.PoolingError) and switch is not None:
                        tracker.session = switch()  # --lock auto behind a pooler: the revision again, fenced
                        continue
                    if statement_lock_timeout and _is_lock_timeout(exc) and retries < STATEMENT_LOCK_RETRIES:
                        retries += 1
                        pause = 0.5 * 2 ** (retries - 1)
                        events.emit(events.RETRY, revision=failed.revision if failed is not None else None,
                                    attempt=retries, attempts=STATEMENT_LOCK_RETRIES, pause=pause,
                                    reason=f"waited over {statement_lock_timeout:g}s for a table lock")
                        if on_wait is not None:
                            name = failed.revision if failed is not None else "a revision"
                            on_wait(
                                f"{name} waited over {statement_lock_timeout:g}s for a table "
                                f"lock and was rolled back; retry {retries} of "
                                f"{STATEMENT_LOCK_RETRIES} in {pause:g}s"
                            )
                        time.sleep(pause)
                        continue
                    # A statement the server refused did nothing; one whose answer the lost
                    # connection never brought back may have run.
                    lost = bool(getattr(exc, "connection_invalidated", False))
                    ran = tracker.ran(including_running=lost) if db.is_mysql else None
                    tracker.stopped = True  # what follows is bookkeeping, not a revision
                    # Nothing to record in a stranger's session, or once another migrator holds the lease.
                    if not isinstance(exc, (locks.PoolingError, lease.LeaseLost)):
                        _record_failure(connection, failed, direction, tracker.started_at, exc, ran=ran,
                                        replaces=tracker.running_row)
                    tracker.running_row = None
                    explained = explain_failure(exc, failed, connection, db, partial=bool(ran))
                    tracker.failed(str(explained))
                    raise explained from exc
        finally:
            event.remove(connection, "begin", tracker.begin)
            event.remove(connection, "before_cursor_execute", tracker.statement)
            event.remove(connection, "after_cursor_execute", tracker.statement_done)
        after = connections.read_current(connection)
    return MigrationResult(db.masked, before, after, installed + tracker.applied, backup_path)


def _release_script_locals(exc: BaseException) -> None:
    """Drop the local variables of the frames a failure went through. A script that failed
    while iterating a result left that cursor in its frame; the error (kept by any caller
    that logs or retries) kept the frame, and on SQLite the open statement kept the closed
    connection's lock: every later write in the process was "database is locked" (prefect's
    b75d279ba985 under roundtrip). The traceback's lines stay for ``-v``."""
    import traceback

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


@contextlib.contextmanager
def _naming_backup(path: str) -> Any:
    """A failure (or a stop) after ``--backup`` copied the database says where the copy is,
    in its one line and as the error's ``backup`` (``--json``)."""
    try:
        yield
    except (MigrateError, KeyboardInterrupt) as exc:
        exc.args = (f"{exc}; the database as it was before this run is backed up at {path}",)
        exc.backup = path  # type: ignore[union-attr]
        raise


def _adopt_or_refuse(
    connection: Connection, db: Database, adopt: Callable[[Connection, Database], None] | None
) -> tuple[str, ...]:
    """A database with tables but no version table is not this package's, or was built
    another way: refuse, unless told how to adopt it (``upgrade --baseline REV``: the
    caller's check that the schema is REV's, then a stamp; the run loop knows no checks).

    :raises MigrateError: tables and no ``adopt``, or whatever ``adopt`` raises.
    """
    tables = ledger.existing_tables(connection)
    if not tables or ledger.is_ours(connection):
        return ()
    if adopt is None:
        shown = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
        raise MigrateError(
            f"{db.masked} has {len(tables)} table(s) ({shown}) but no version table: it was built "
            f"another way, or belongs to another application; nothing was written. If its schema is "
            f"a revision's, say which: {COMMAND} stamp REV, or upgrade --baseline REV (both check "
            "the schema first)"
        )
    adopt(connection, db)
    return connections.read_current(connection)


def _settings_for(connection: Connection, db: Database, statement_lock_timeout: float | None) -> list[str]:
    """PostgreSQL settings for each revision's transaction, as SET LOCAL: they end with the
    transaction, so none is left on a server session an application may share (pooling)."""
    if not db.is_postgresql:
        return []
    found = []
    if connection.dialect.server_version_info >= (14,):
        # The server ends this session soon after its client dies, instead of running the
        # statement to its end holding the revision's locks (PostgreSQL 14+).
        found.append("SET LOCAL client_connection_check_interval = '1s'")
    if statement_lock_timeout:
        found.append(f"SET LOCAL lock_timeout = '{statement_lock_timeout_ms(statement_lock_timeout)}ms'")
    return found


#: Statements that change nothing a repair would have to undo.
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


class ScriptExited(RuntimeError):
    """A revision script called ``sys.exit()``: it is rolled back and recorded as failed,
    not taken for the command's own exit (which said nothing and kept no ledger row)."""


#: What an interrupt that stopped nothing half way says.
ROLLED_BACK = "the running revision was rolled back; the database is at the last revision that completed"


def _interrupted(
    stop: KeyboardInterrupt, connection: Connection, db: Database, plan: list[Script], tracker: Tracker,
    direction: str,
) -> KeyboardInterrupt:
    """What an interrupt left behind, told as a failure would be, as the same kind of
    interrupt (the command's exit code tells SIGINT from SIGTERM). A revision that
    committed part of its work (a backfill's batches; DDL on MySQL) is not "rolled back":
    a backfill resumes on the next run, a MySQL revision is recorded ``partial``."""
    with contextlib.suppress(Exception):
        if connection.in_transaction():
            connection.rollback()
    now: tuple[str, ...] = ()
    with contextlib.suppress(Exception):
        now = connections.read_current(connection)
    # Recorded but not yet reported: committed if the version table moved past it.
    committed = [e for e in tracker.pending if (e.revision in now) == (direction == "upgrade")]
    tracker.pending.clear()
    tracker.applied.extend(committed)
    done = len(tracker.applied)
    if done >= len(plan):
        return type(stop)(f"stopped after the migration completed; the database is at {', '.join(now) or 'base'}")
    failed = plan[done]
    stopped = None
    with contextlib.suppress(Exception):
        stopped = next((p for p in backfill.interrupted(connection) if p.revision == failed.revision), None)
    if stopped is not None:
        return type(stop)(
            f"revision {failed.revision} stopped after its backfill of {stopped.table} committed "
            f"{stopped.done} of {stopped.total} rows; the rest of the revision was rolled back; "
            f"{COMMAND} upgrade resumes it"
        )
    ran = tracker.ran(including_running=True) if db.is_mysql else []  # stopped mid-statement: it may have run
    if ran:
        _record_failure(connection, failed, direction, tracker.started_at, None, ran=ran,
                        replaces=tracker.running_row, reason=f"stopped by {type(stop).__name__}")
        tracker.running_row = None
        return type(stop)(
            f"revision {failed.revision} stopped part way, and DDL on MySQL/MariaDB is not "
            f"transactional: what it ran stays (recorded as partial, see {COMMAND} history "
            f"--applied); fix the schema by hand, then {COMMAND} repair {failed.revision} "
            "--applied or --reverted"
        )
    return type(stop)(ROLLED_BACK)


def _record_failure(
    connection: Connection, failed: Script | None, direction: str, started_at: Any, exc: Exception | None,
    ran: list[str] | None = None,
    replaces: int | None = None,
    reason: str | None = None,
) -> None:
    """A failed revision rolled back with its own ledger row: record it apart. Where DDL
    is not transactional and some of it ran (``ran``), the row says ``partial`` and lists it,
    in place of the ``running`` row (``replaces``) its first statement committed."""
    if failed is None:
        return
    detail = reason if exc is None else f"{connections.error_name(exc)}: {connections.first_line(exc)}"
    with contextlib.suppress(Exception):
        if ran and any(row.revision == failed.revision for row in backfill.interrupted(connection)):
            ran = None  # stopped in its backfill: resumable as it stands (see mypkg.batch), no repair
    if ran:
        detail += f"; ran before it failed: {'; '.join(ran)}"
    with contextlib.suppress(Exception):  # the connection itself may be what failed
        if connection.in_transaction():
            connection.rollback()
        if replaces is not None:
            ledger.delete(connection, replaces)
        ledger.write(
            connection,
            revision=failed.revision,
            direction=direction,
            checksum=integrity.shipped_checksum(failed.revision),
            started_at=started_at,
            outcome=repair.PARTIAL if ran else "failed",
            detail=detail,
        )
        connection.commit()
