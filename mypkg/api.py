"""The typed Python API behind ``mypkg-migrate``: every command is one function here.

Each function takes the database as a URL string, a SQLAlchemy ``URL``, an ``Engine``
or a ``Connection`` (``None`` means ``$MYPKG_DATABASE_URL`` or ``sqlite:///mypkg.db``),
and raises :class:`~mypkg.errors.MigrateError` (or its subclass ``UsageError``) with
a one-line message when it cannot do what was asked. A failed upgrade leaves the
database at the last revision that completed.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Union

from . import database, ledger, locking, scripts, settings
from .errors import MigrateError, UsageError
from .locking import DEFAULT_LOCK_TIMEOUT

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy.engine import URL, Connection, Engine

Target = Union[str, "URL", "Engine", "Connection", None]


# The results are typed named tuples in their own module, which the fast path imports
# without importing this one.
from .results import (  # noqa: E402
    AppliedRevision,
    ChecksumProblem,
    LedgerRow,
    MigrationResult,
    RevisionInfo,
    Status,
)

__all__ = [
    "AppliedRevision",
    "ChecksumProblem",
    "LedgerRow",
    "MigrationResult",
    "RevisionInfo",
    "Status",
    "applied_history",
    "check",
    "current",
    "downgrade",
    "heads",
    "history",
    "offline_sql",
    "stamp",
    "status",
    "upgrade",
    "verify",
    "wait_for_head",
]


# --- opening the database ----------------------------------------------------


@contextlib.contextmanager
def _connect(target: Target, *, will_write: bool) -> Iterator[tuple[Connection, URL]]:
    """A connection for a migration, and the URL to name in messages.

    A SQLite file engine handed in by the caller is replaced by one made
    transactional (see :func:`mypkg.database.create_engine`) on the same file.
    """
    from sqlalchemy.engine import Connection, Engine

    if isinstance(target, Connection):
        yield target, target.engine.url
        return
    if isinstance(target, Engine) and database.sqlite_path(target.url) is None:
        with database.database_errors(target.url), target.connect() as connection:
            yield connection, target.url
        return
    url = target.url if isinstance(target, Engine) else _parse(target)
    database.check_sqlite_file(url, will_write=will_write)
    engine = database.create_engine(url, for_migrations=True)
    try:
        with database.database_errors(url), engine.connect() as connection:
            yield connection, url
    finally:
        engine.dispose()


@contextlib.contextmanager
def _locked(
    target: Target, lock_timeout: float, on_wait: Callable[[str], None] | None
) -> Iterator[tuple[Connection, URL]]:
    """A connection for a command that writes, holding the migration lock.

    Unwinds in reverse: the PostgreSQL lock is released, then the connection is
    closed, then the SQLite file lock (whose descriptor must outlive the connection).
    """
    url = _target_url(target)
    path = database.sqlite_path(url)
    with contextlib.ExitStack() as stack:
        if path is not None:
            database.check_sqlite_file(url, will_write=True)
            stack.enter_context(locking.sqlite_lock(path, url, lock_timeout, on_wait))
        connection, url = stack.enter_context(_connect(target, will_write=True))
        if url.get_backend_name() == "postgresql":
            _notice_dead_clients(connection)
            stack.enter_context(locking.postgresql_lock(connection, url, lock_timeout, on_wait))
        yield connection, url


def _notice_dead_clients(connection: Connection) -> None:
    """Make the server end this session soon after its client dies (PostgreSQL 14+).

    Without it, a killed migrator's server process runs its statement to the end,
    holding the revision's locks and the migration lock until then.
    """
    from sqlalchemy import text

    if connection.dialect.server_version_info >= (14,):
        connection.execute(text("SET client_connection_check_interval = '1s'"))
        connection.commit()


def _parse(target: str | URL | None) -> URL:
    if target is None or isinstance(target, str):
        return settings.parse_url(settings.resolve_url_string(target))
    return target


def _database_exists(target: Target) -> bool:
    """False for a SQLite file that is not there yet: reading it must not create it."""
    from sqlalchemy.engine import Connection, Engine

    if isinstance(target, Connection | Engine):
        return True
    path = database.sqlite_path(_parse(target))
    return path is None or path.exists()


def _read_current(connection: Connection) -> tuple[str, ...]:
    """The revisions in ``alembic_version``; reads only, never creates the table."""
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(connection).get_current_heads()
    # End the read transaction SQLAlchemy began: Alembic must start its own
    # per-revision transactions, or it treats them as external and commits nothing.
    connection.commit()
    return tuple(heads)


def _current_in_transaction(connection: Connection) -> tuple[str, ...]:
    """The version table as this transaction sees it (no commit, unlike _read_current)."""
    from alembic.runtime.migration import MigrationContext

    return tuple(MigrationContext.configure(connection).get_current_heads())


# --- the revision graph --------------------------------------------------------


def _script(revision: str) -> Script | None:
    from alembic.util import CommandError

    try:
        return scripts.script_directory().get_revision(revision)
    except CommandError:
        return None


def _describe(revision: str | None) -> str:
    if revision is None:
        return "base (empty)"
    script = _script(revision)
    return f"{revision} ({script.doc})" if script is not None else revision


def _require_known(current: Sequence[str], url: URL) -> None:
    from ._version import package_version

    unknown = [rev for rev in current if _script(rev) is None]
    if unknown:
        raise MigrateError(
            f"{settings.mask(url)} is at revision {', '.join(unknown)}, which mypkg "
            f"{package_version()} does not ship: it was migrated by a newer mypkg; "
            "install that version (or newer) to migrate or downgrade it"
        )


def _require_revision(revision: str) -> None:
    """Fail as a usage error on a revision the package does not have.

    Relative (``-1``, ``+2``, ``head-1``) and symbolic (``head``, ``base``, ``heads``)
    revisions are left to Alembic, which resolves them against the database.
    """
    if revision in ("head", "heads", "base") or revision.lstrip("+-").isdigit():
        return
    if any(sign in revision for sign in "+-") and revision.split("+")[0].split("-")[0] in (
        "head",
        "base",
    ):
        return
    from alembic.util import CommandError

    try:
        found = scripts.script_directory().get_revisions(revision)
    except CommandError as exc:
        raise UsageError(f"unknown revision {revision!r}: {exc}") from None
    if not found:
        raise UsageError(f"unknown revision {revision!r}")


def _planned(current: Sequence[str], destination: str, direction: str) -> list[Script]:
    """The revisions Alembic is about to run, in order; used to name a failing one."""
    directory = scripts.script_directory()
    try:
        if direction == "upgrade":
            steps = directory._upgrade_revs(destination, tuple(current))
        else:
            steps = directory._downgrade_revs(destination, tuple(current))
    except Exception:  # noqa: BLE001 - only for messages; Alembic reports the real error
        return []
    return [step.revision for step in steps]


# --- running -------------------------------------------------------------------


#: Bounded retry of a revision whose statement waited longer than
#: ``statement_lock_timeout`` for a table lock (PostgreSQL ``lock_timeout``).
STATEMENT_LOCK_RETRIES = 3


def _is_lock_timeout(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03"  # lock_not_available


def _absolute(plan: Sequence[Script], direction: str, revision: str) -> str:
    """The revision a relative target (``-1``, ``+2``) means now, so a retry after some
    revisions completed does not go further than asked."""
    if not plan:
        return revision
    last = plan[-1]
    if direction == "upgrade":
        return last.revision
    down = last.down_revision
    if down is None:
        return "base"
    return down if isinstance(down, str) else revision


def _run(
    command_name: Literal["upgrade", "downgrade"],
    target: Target,
    revision: str,
    on_applied: Callable[[AppliedRevision], None] | None,
    lock_timeout: float,
    statement_lock_timeout: float | None,
    on_wait: Callable[[str], None] | None,
    ignore_checksums: bool = False,
    backup: bool = False,
) -> MigrationResult:
    from sqlalchemy import event, text

    from .manifest import load as load_manifest

    _require_revision(revision)
    url = _target_url(target)
    if backup and database.sqlite_path(url) is None:
        raise UsageError("--backup copies a SQLite file; back PostgreSQL up with pg_dump")
    with _locked(target, lock_timeout, on_wait) as (connection, url):
        # Read only now, under the lock: the previous holder may have migrated.
        before = _read_current(connection)
        _require_known(before, url)
        if command_name == "upgrade" and not ignore_checksums:
            _refuse_on_checksum_problems(connection, before, url)
        plan = _planned(before, revision, command_name)
        destination = _absolute(plan, command_name, revision)
        # The backup comes before anything is written, the ledger table included.
        backup_path = _backup_sqlite(url, before) if backup and plan else None
        ledger.ensure(connection)
        shipped = load_manifest().by_id
        applied: list[AppliedRevision] = []
        started = [time.perf_counter(), ledger.now()]

        def mark_start(_conn: Any) -> None:
            started[:] = [time.perf_counter(), ledger.now()]

        def record(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
            # Up or down, up_revision_id names the script that just ran.
            script = _script(step.up_revision_id)
            entry = AppliedRevision(
                revision=step.up_revision_id,
                message=script.doc if script is not None else "",
                direction="upgrade" if step.is_upgrade else "downgrade",
                seconds=time.perf_counter() - started[0],
            )
            # Still inside the revision's transaction: the row commits with it.
            ledger.write(
                connection,
                revision=entry.revision,
                direction=entry.direction,
                checksum=getattr(shipped.get(entry.revision), "sha256", None),
                started_at=started[1],
                outcome="applied" if step.is_upgrade else "reverted",
            )
            applied.append(entry)
            if on_applied is not None:
                on_applied(entry)

        postgresql = url.get_backend_name() == "postgresql"
        if postgresql and statement_lock_timeout:
            connection.execute(text(f"SET lock_timeout = '{int(statement_lock_timeout * 1000)}ms'"))
            connection.commit()
        config = scripts.make_config(
            connection=connection, on_version_apply=[record], with_models=False
        )
        event.listen(connection, "begin", mark_start)
        retries = 0
        try:
            while True:
                try:
                    _run_env(config, command_name, destination)
                    break
                except Exception as exc:
                    if connection.in_transaction():
                        connection.rollback()
                    failed = plan[len(applied)] if len(applied) < len(plan) else None
                    if (
                        postgresql
                        and statement_lock_timeout
                        and _is_lock_timeout(exc)
                        and retries < STATEMENT_LOCK_RETRIES
                    ):
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
                    _record_failure(connection, failed, command_name, started[1], exc, shipped)
                    raise _failure(exc, failed, connection, url) from exc
        finally:
            event.remove(connection, "begin", mark_start)
            if postgresql and statement_lock_timeout:
                with contextlib.suppress(Exception):
                    connection.execute(text("RESET lock_timeout"))
                    connection.commit()
        after = _read_current(connection)
    return MigrationResult(settings.mask(url), before, after, applied, backup_path)


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
    connection: Connection,
    failed: Script | None,
    direction: str,
    started_at: Any,
    exc: Exception,
    shipped: dict[str, Any],
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
            checksum=getattr(shipped.get(failed.revision), "sha256", None),
            started_at=started_at,
            outcome="failed",
            detail=f"{type(getattr(exc, 'orig', None) or exc).__name__}: {database.first_line(exc)}",
        )
        connection.commit()


def _backup_sqlite(url: URL, current: Sequence[str]) -> str | None:
    """Copy the SQLite file with SQLite's online backup API before anything changes."""
    import sqlite3

    path = database.sqlite_path(url)
    if path is None or not path.exists() or path.stat().st_size == 0:
        return None
    stamp = ledger.now().strftime("%Y%m%dT%H%M%S.%fZ")
    destination = path.with_name(f"{path.name}.{stamp}.{'-'.join(current) or 'base'}.bak")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(destination)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()
    return str(destination)


def _checksum_problems(connection: Connection, current: Sequence[str]) -> list[ChecksumProblem]:
    from .manifest import load as load_manifest

    shipped = load_manifest()
    recorded = ledger.recorded_checksums(connection)
    problems = [
        ChecksumProblem(rev, "unknown revision", "the database is at it; this package does not ship it")
        for rev in current
        if rev not in shipped
    ]
    for rev in shipped.ancestors(tuple(current)):
        checksum = recorded.get(rev)
        if checksum is not None and checksum != shipped.by_id[rev].sha256:
            problems.append(
                ChecksumProblem(
                    rev,
                    "mismatch",
                    f"{shipped.by_id[rev].filename} changed since it was applied "
                    f"(recorded sha256 {checksum[:12]}…, shipped {shipped.by_id[rev].sha256[:12]}…)",
                )
            )
    applied_now = set(shipped.ancestors(tuple(current)))
    for rev in recorded:
        if rev not in shipped and rev not in current and rev not in applied_now:
            problems.append(
                ChecksumProblem(rev, "missing script", "recorded as applied; no longer shipped")
            )
    return problems


def _refuse_on_checksum_problems(connection: Connection, current: Sequence[str], url: URL) -> None:
    problems = [p for p in _checksum_problems(connection, current) if p.kind != "unknown revision"]
    if problems:
        first = problems[0]
        raise MigrateError(
            f"{settings.mask(url)}: {len(problems)} applied revision(s) differ from the scripts "
            f"shipped, e.g. {first.revision}: {first.detail}; run mypkg-migrate verify, "
            "or upgrade with --ignore-checksums"
        )


def verify(target: Target = None) -> list[ChecksumProblem]:
    """Compare every applied revision's recorded checksum with the shipped script.

    Revisions applied before the ledger existed have nothing recorded and pass.
    An empty list means everything matches.
    """
    with _connect(target, will_write=False) as (connection, _url):
        current = _read_current(connection)
        return _checksum_problems(connection, current)


def applied_history(target: Target = None) -> list[LedgerRow]:
    """The ledger: every revision applied, reverted, stamped or failed, oldest first."""
    if not _database_exists(target):
        return []
    with _connect(target, will_write=False) as (connection, _url):
        return ledger.rows(connection)


def _failure(exc: Exception, failed: Script | None, connection: Connection, url: URL) -> Exception:
    from alembic.util import CommandError

    if isinstance(exc, MigrateError):
        return exc
    reason = database.first_line(exc)
    if isinstance(exc, CommandError) and failed is None:
        return MigrateError(reason)
    try:
        now = _describe(_read_current(connection)[0] if _read_current(connection) else None)
    except Exception:  # noqa: BLE001 - the connection itself may be gone
        now = "unknown"
    what = f"revision {failed.revision} ({failed.doc})" if failed is not None else "migration"
    return MigrateError(
        f"{what} failed: {type(getattr(exc, 'orig', None) or exc).__name__}: {reason}; "
        f"{settings.mask(url)} is at {now}"
    )


def upgrade(
    target: Target = None,
    revision: str = "head",
    *,
    on_applied: Callable[[AppliedRevision], None] | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    statement_lock_timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
    ignore_checksums: bool = False,
    backup: bool = False,
) -> MigrationResult:
    """Upgrade the database to ``revision`` (default: the newest this package ships).

    Each revision runs and commits in its own transaction; ``on_applied`` is called
    after each one. Safe to call at application start-up, from many replicas at once:
    one migrates while the others wait for the migration lock (up to ``lock_timeout``
    seconds), then find nothing left to do.

    :param statement_lock_timeout: PostgreSQL: give up a statement that waits longer
        than this for a table lock (``lock_timeout``), roll its revision back and retry
        it (:data:`STATEMENT_LOCK_RETRIES` times), so that a migration queued behind a
        long transaction does not stall the application's queries queued behind it.
    :param on_wait: called with a message while waiting for a lock or retrying.
    :param ignore_checksums: upgrade even if an applied revision's script changed
        since it ran (see :func:`verify`); otherwise that is refused.
    :param backup: SQLite: first copy the file next to it (``MigrationResult.backup``).

    :raises UsageError: unknown revision, bad URL.
    :raises MigrateError: the database cannot be reached or written, is at a
        revision this package does not know, or a revision failed (the message names it).
    """
    return _run(
        "upgrade", target, revision, on_applied, lock_timeout, statement_lock_timeout, on_wait,
        ignore_checksums=ignore_checksums, backup=backup,
    )


def downgrade(
    target: Target = None,
    revision: str = "-1",
    *,
    confirm_base: bool = False,
    on_applied: Callable[[AppliedRevision], None] | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    statement_lock_timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
    backup: bool = False,
) -> MigrationResult:
    """Downgrade the database to ``revision`` (``-1``: one step back).

    :param confirm_base: must be True to downgrade to ``base``, which drops every table.
    :raises UsageError: ``base`` without ``confirm_base``, unknown revision.
    :raises MigrateError: as :func:`upgrade`.
    """
    if revision == "base" and not confirm_base:
        raise UsageError("downgrading to base drops every table and its data: confirm with --yes")
    return _run(
        "downgrade", target, revision, on_applied, lock_timeout, statement_lock_timeout, on_wait,
        backup=backup,
    )


def current(target: Target = None) -> tuple[str, ...]:
    """The revision(s) the database is at; empty for a new database. Writes nothing."""
    if not _database_exists(target):
        return ()
    with _connect(target, will_write=False) as (connection, _url):
        return _read_current(connection)


def heads() -> tuple[str, ...]:
    """The newest revision(s) this package ships."""
    return tuple(scripts.script_directory().get_heads())


def history() -> list[RevisionInfo]:
    """Every revision this package ships, oldest first."""
    directory = scripts.script_directory()
    revisions = list(directory.walk_revisions())
    revisions.reverse()
    return [
        RevisionInfo(
            revision=rev.revision,
            down_revisions=tuple(_as_tuple(rev.down_revision)),
            message=rev.doc,
            is_head=rev.is_head,
        )
        for rev in revisions
    ]


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def status(target: Target = None) -> Status:
    """Applied and pending revisions. Writes nothing.

    :raises MigrateError: unreachable, or at a revision this package does not know.
    """
    url = _target_url(target)
    now = current(target)
    _require_known(now, url)
    directory = scripts.script_directory()
    applied_ids = {rev.revision for rev in directory.iterate_revisions(now, "base")} if now else set()
    everything = history()
    return Status(
        database=settings.mask(url),
        current=now,
        heads=heads(),
        applied=[rev for rev in everything if rev.revision in applied_ids],
        pending=[rev for rev in everything if rev.revision not in applied_ids],
    )


def _target_url(target: Target) -> URL:
    from sqlalchemy.engine import Connection, Engine

    if isinstance(target, Connection):
        return target.engine.url
    if isinstance(target, Engine):
        return target.url
    return _parse(target)


def wait_for_head(
    target: Target = None,
    timeout: float = 60.0,
    *,
    poll: float = 0.5,
    on_wait: Callable[[Status], None] | None = None,
) -> Status:
    """Poll until the database is at head, for replicas that wait for a migrator.

    :raises MigrateError: still behind after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    told = False
    while True:
        state = status(target)
        if state.at_head:
            return state
        if time.monotonic() >= deadline:
            raise MigrateError(
                f"{state.database} is still {len(state.pending)} revision(s) behind head "
                f"after {timeout:g}s: is a migrator running (mypkg-migrate upgrade)?"
            )
        if on_wait is not None and not told:
            on_wait(state)
            told = True
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def stamp(
    target: Target,
    revision: str,
    *,
    force: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: Callable[[str], None] | None = None,
) -> MigrationResult:
    """Record ``revision`` in the database without running any migration.

    First the database's schema is compared with the schema ``revision`` builds
    (see :mod:`mypkg.baseline`); on a difference nothing is recorded unless ``force``.

    :raises MigrateError: the schema differs (the message lists how), or ``force``
        was not given.
    """
    from alembic import command

    from . import baseline
    from .manifest import load as load_manifest

    _require_revision(revision)
    with _locked(target, lock_timeout, on_wait) as (connection, url):
        before = _read_current(connection)
        if not force:
            try:
                found = baseline.differences(connection, revision)
            except MigrateError:
                raise
            except Exception as exc:
                raise _failure(exc, None, connection, url) from exc
            if found:
                shown = "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")
                raise MigrateError(
                    f"{settings.mask(url)} does not have the schema of {revision}: "
                    f"{len(found)} difference(s): {shown}; nothing stamped (--force to stamp anyway)"
                )
        ledger.ensure(connection)  # only now: a refused stamp leaves nothing behind
        config = scripts.make_config(connection=connection)
        started = ledger.now()
        try:
            command.stamp(config, revision)
            shipped = load_manifest().by_id
            for rev in _current_in_transaction(connection):
                ledger.write(
                    connection,
                    revision=rev,
                    direction="stamp",
                    checksum=getattr(shipped.get(rev), "sha256", None),
                    started_at=started,
                    outcome="stamped",
                    detail="forced" if force else None,
                )
            if connection.in_transaction():
                connection.commit()
        except Exception as exc:
            raise _failure(exc, None, connection, url) from exc
        after = _read_current(connection)
    return MigrationResult(settings.mask(url), before, after, [])


def check(target: Target = None) -> list[str]:
    """Differences between the models and the database, one readable line each.

    An empty list means the database matches :data:`mypkg.models.metadata`.

    :raises MigrateError: the database is not at head (upgrade first).
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from .models import metadata

    state = status(target)
    if not state.at_head:
        raise MigrateError(
            f"{state.database} is not at head ({len(state.pending)} revision(s) pending): "
            "run mypkg-migrate upgrade first"
        )
    with _connect(target, will_write=False) as (connection, _url):
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": False,
                "include_name": _not_runner_table,
            },
        )
        differences = compare_metadata(context, metadata)
        connection.rollback()
    return [_render_difference(diff) for diff in differences]


def _not_runner_table(name: str | None, type_: str, _parents: Any) -> bool:
    return not (type_ == "table" and name in ledger.RUNNER_TABLES)


def _render_difference(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_render_difference(item) for item in diff)
    kind, *args = diff
    if kind.startswith("modify_"):
        _schema, table, column, _info, old, new = args
        return f"{kind} {table}.{column}: database {old!r}, models {new!r}"
    names = []
    for arg in args:
        name = getattr(arg, "name", None)
        table = getattr(getattr(arg, "table", None), "name", None)
        if name is not None:
            names.append(f"{table}.{name}" if table and table != name else str(name))
        elif isinstance(arg, str):
            names.append(arg)
    return f"{kind} {' '.join(names)}".strip()


def offline_sql(
    direction: Literal["upgrade", "downgrade"],
    revision_range: str,
    target: str | URL | None = None,
) -> str:
    """The SQL an upgrade or downgrade would run, without a database.

    :param revision_range: ``FROM:TO`` (for ``upgrade``, a bare ``TO`` starts at base).
    :param target: only its dialect matters; nothing is connected.
    :raises UsageError: unknown revision, or a downgrade without ``FROM:``.
    """
    from alembic import command

    start, sep, end = revision_range.rpartition(":")
    if direction == "downgrade" and not sep:
        raise UsageError("downgrade --sql needs a range FROM:TO, e.g. head:base")
    for revision in (start, end):
        if revision:
            _require_revision(revision)
    from alembic.util import CommandError

    buffer = io.StringIO()
    config = scripts.make_config(url=_parse(target))
    config.output_buffer = buffer

    try:
        getattr(command, direction)(config, revision_range, sql=True)
    except CommandError as exc:
        raise MigrateError(database.first_line(exc)) from exc
    return buffer.getvalue()
