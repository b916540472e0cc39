"""The typed Python API behind ``mypkg-migrate``: every command is one function here.

Each function takes the database as a URL string, a SQLAlchemy ``URL``, an ``Engine``
or a ``Connection`` (``None`` means ``$MYPKG_DATABASE_URL``, else the default SQLite
file), resolves it once (:mod:`.target`), and raises
:class:`~.errors.MigrateError` (or its subclass ``UsageError``) with a one-line message
when it cannot do what was asked. A failed upgrade leaves the database at the last
revision that completed. The work lives in the layers below (docs/layout.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from .checks.baseline import drift  # noqa: I001
from .checks.checkpoint import checkpoint, prove as prove_checkpoints
from .checks.roundtrip import roundtrip
from .review.planner import plan
from .database import connections, ledger, locks, tenants
from .database.settings import DEFAULT_BUSY_TIMEOUT, DEFAULT_LOCK_TIMEOUT
from .database.target import Target, resolve, with_schema
from .errors import MigrateError, UsageError
from .history import branches, graph
from .history.manifest import load as load_manifest
from .identity import COMMAND
from .database.bridge import for_async_drivers
from .observe.api import told
from .results import (
    AppliedRevision,
    BackfillProgress,
    ChecksumProblem,
    Drift,
    LedgerRow,
    MigrationResult,
    Plan,
    RevisionInfo,
    Status,
)
from .runtime import integrity, offline, runner
from .runtime.state import wait_for_head

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


__all__ = [
    "AppliedRevision", "BackfillProgress", "ChecksumProblem", "Drift", "LedgerRow", "MigrationResult", "Plan",
    "RevisionInfo",
    "Status", "applied_history", "check", "checkpoint", "current", "downgrade", "drift", "heads", "history",
    "offline_sql", "plan", "prove_checkpoints", "repair", "roundtrip", "stamp", "status", "upgrade", "verify", "wait_for_head",
]

Waiting = Callable[[str], None]


@told
def upgrade(
    target: Target = None,
    revision: str = "head",
    *,
    on_applied: Callable[[AppliedRevision], None] | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    statement_lock_timeout: float | None = None,
    on_wait: Waiting | None = None,
    ignore_checksums: bool = False,
    backup: bool = False,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    baseline: str | None = None,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    use_checkpoints: bool = True,
    only: str | None = None,
    without: Sequence[str] = (),
    phase: Literal["pre", "post"] | None = None,
    schema: str | None = None,
    plan: str | None = None,
) -> MigrationResult:
    """Upgrade the database to ``revision`` (default: the newest this package ships;
    every head when it ships several unmerged branches, or plugins are installed).

    Each revision runs and commits in its own transaction; ``on_applied`` is called
    after each one. Safe to call at application start-up, from many replicas at once:
    one migrates while the others wait for the migration lock (up to ``lock_timeout``
    seconds), then find nothing left to do.

    :param statement_lock_timeout: PostgreSQL: give up a statement that waits longer
        than this for a table lock (``lock_timeout``), roll its revision back and retry
        it (:data:`.runner.STATEMENT_LOCK_RETRIES` times), so that a migration queued
        behind a long transaction does not stall the application's queries queued behind it.
    :param on_wait: called with a message while waiting for a lock or retrying.
    :param ignore_checksums: upgrade even if an applied revision's script changed
        since it ran (see :func:`verify`); otherwise that is refused.
    :param backup: SQLite: first copy the file next to it (``MigrationResult.backup``).
    :param busy_timeout: SQLite: how long each revision waits for an application's write
        or a reader's transaction to end before it fails.
    :param baseline: a database with tables but no version table is refused, unless its
        schema is this revision's (checked as by :func:`stamp`): then it is stamped first.
    :param on_progress: called after each batch of a data migration
        (:func:`mypkg.batch.backfill`) with its :class:`BackfillProgress`; None: silent.
    :param use_checkpoints: an empty database gets the newest checkpoint the upgrade
        passes in one step (:func:`checkpoint`); False replays every revision.
    :param only: one installed plugin's revisions (and those they build on); the package's
        own name: its own. ``without``: every installed plugin but these (docs/plugins.md).
    :param phase: ``"pre"``: only the pending pre-deploy revisions, while the old release
        runs; ``"post"``: the rest, once it is gone (docs/deploying.md). An empty database
        takes every revision whatever the phase.
    :param schema: a tenant's schema (PostgreSQL) or database (MySQL, MariaDB) on the
        server ``target`` names (the URL's ``schema=`` parameter). A new one at a
        checkpointed head is installed through the driver alone (docs/performance.md).
    :param plan: a file :func:`plan` saved (``plan --out``): run exactly the revisions it
        reviewed, or nothing when the database, its revision or a script differs (docs/reviewing.md).

    :raises UsageError: unknown revision, bad URL.
    :raises MigrateError: the database cannot be reached or written, is at a
        revision this package does not know, or a revision failed (the message names it).
    """
    if (only or without) and revision != "head":
        raise UsageError(f"--only and --without choose heads: give no revision ({revision!r} given)")
    branches.require_phase(phase, revision, only or without)
    reviewed = None
    if plan is not None:
        from .review import planfile

        revision, phase, reviewed = planfile.prepare(planfile.load(plan), resolve(with_schema(target, schema)), plan,
                                                     revision, baseline or only or without or phase)
    if revision == "head" and len(load_manifest().heads) > 1:  # the manifest: no need for Alembic's graph
        revision = "heads"  # several unmerged branches: all of them, as Django and Flyway do
    target = with_schema(target, schema)
    if use_checkpoints and not (backup or baseline or only or without or plan):
        from .fast.install import fresh_install
        from .runtime.environment import require_models_convention

        installed = fresh_install(target, revision, on_applied=on_applied, busy_timeout=busy_timeout,
                                  statement_lock_timeout=statement_lock_timeout, check=require_models_convention)
        if installed is not None:  # an empty database at a checkpointed head, without SQLAlchemy's work
            return installed
    from .checks.baseline import adopter

    db, done = resolve(target), []
    for destination in branches.targets(only, without) if only or without else [revision]:
        done.append(runner.run(
            "upgrade", db, destination, on_applied=on_applied, lock_timeout=lock_timeout,
            statement_lock_timeout=statement_lock_timeout, on_wait=on_wait,
            ignore_checksums=ignore_checksums, backup=backup and not done, busy_timeout=busy_timeout,
            adopt=None if baseline is None else adopter(baseline), on_progress=on_progress,
            use_checkpoints=use_checkpoints, phase=phase, reviewed=reviewed,
        ))
    return done[0]._replace(after=done[-1].after, applied=[step for run in done for step in run.applied])


@told
def downgrade(
    target: Target = None,
    revision: str = "-1",
    *,
    confirm_base: bool = False,
    on_applied: Callable[[AppliedRevision], None] | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    statement_lock_timeout: float | None = None,
    on_wait: Waiting | None = None,
    backup: bool = False,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> MigrationResult:
    """Downgrade the database to ``revision`` (``-1``: one step back).

    :param confirm_base: must be True to downgrade to ``base``, which drops every table.
    :raises UsageError: ``base`` without ``confirm_base``, unknown revision.
    :raises MigrateError: as :func:`upgrade`.
    """
    if revision == "base" and not confirm_base:
        raise UsageError("downgrading to base drops every table and its data: confirm with --yes")
    if revision.endswith("@base") and not confirm_base:
        raise UsageError(f"downgrading to {revision} drops that branch's tables and their data: confirm with --yes")
    return runner.run(
        "downgrade", resolve(target), revision, on_applied=on_applied, lock_timeout=lock_timeout,
        statement_lock_timeout=statement_lock_timeout, on_wait=on_wait, backup=backup,
        busy_timeout=busy_timeout,
    )


def current(target: Target = None) -> tuple[str, ...]:
    """The revision(s) the database is at; empty for a new database. Writes nothing."""
    db = resolve(target)
    connections.check_sqlite_file(db, will_write=False)  # a missing directory is not "empty"
    if tenants.missing(db):
        return ()
    with connections.connect(db, will_write=False) as connection:
        return connections.read_current(connection)


def heads() -> tuple[str, ...]:
    """The newest revision(s) this package ships."""
    return graph.heads()


def history() -> list[RevisionInfo]:
    """Every revision this package ships, oldest first."""
    return graph.history()


def status(target: Target = None) -> Status:
    """Applied and pending revisions (each with its deploy phase). Writes nothing.

    :raises MigrateError: unreachable, or at a revision this package does not know.
    """
    from .runtime.state import read_status

    return read_status(resolve(target))


@told
def stamp(
    target: Target,
    revision: str,
    *,
    force: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: Waiting | None = None,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> MigrationResult:
    """Record ``revision`` in the database without running any migration.

    First the database's schema is compared with the schema ``revision`` builds
    (see :mod:`.baseline`); on a difference nothing is recorded unless ``force``.

    :raises MigrateError: the schema differs (the message lists how), or ``force``
        was not given.
    """
    from .checks import baseline

    db = resolve(target)
    graph.require_revision(revision)
    with locks.locked(db, lock_timeout, on_wait, busy_timeout) as (connection, _session):
        before = connections.read_current(connection)
        graph.require_known([rev for rev in before if rev.strip()], db.masked,  # stamp replaces a blank row
                            lambda unknown: ledger.plugins_of(connection, unknown))
        baseline.stamp_checked(connection, db, revision, force=force)
        after = connections.read_current(connection)
    return MigrationResult(db.masked, before, after, [])


@told
def repair(
    target: Target,
    revision: str,
    *,
    applied: bool,
    force: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: Waiting | None = None,
) -> MigrationResult:
    """Record how an operator fixed a revision that failed part way (MySQL, MariaDB).

    :param applied: True: the operator completed the revision by hand (it is stamped);
        False: they undid what it ran (the database stays at the revision before it).
        Either way the schema is checked first, unless ``force``.
    :raises UsageError: ``revision`` does not await repair.
    :raises MigrateError: the schema is not what the decision claims.
    """
    from .checks.baseline import record_repair

    db = resolve(target)
    graph.require_revision(revision)
    with locks.locked(db, lock_timeout, on_wait) as (connection, _session):
        before = connections.read_current(connection)
        record_repair(connection, db, revision, applied=applied, force=force)
        after = connections.read_current(connection)
    return MigrationResult(db.masked, before, after, [])


def realign_checksums(
    target: Target = None,
    revision: str | None = None,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: Waiting | None = None,
) -> list[str]:
    """Accept the shipped scripts as they are now where an applied revision's script changed
    since it ran (a comment, a reformat): Flyway's ``repair``. Recorded in the ledger per
    revision (``realigned``: the new checksum, who and when, the old one); later upgrades
    stop refusing. Returns the revisions realigned.

    :param revision: only this one; None: every applied revision whose checksum differs.
    :raises UsageError: ``revision`` is not applied with a differing checksum.
    """
    db = resolve(target)
    if revision is not None:
        graph.require_revision(revision)
        revision = graph.script(revision).revision  # type: ignore[union-attr]  # a prefix, completed
    with locks.locked(db, lock_timeout, on_wait) as (connection, _session):
        return integrity.realign(connection, revision)


def check(target: Target = None) -> list[str]:
    """Differences between the models and the database, one readable line each.

    An empty list means the database matches the models' ``metadata``.

    :raises MigrateError: the database is not at head (upgrade first).
    """
    from .. import models
    from .checks.compare import differences
    from .runtime.environment import require_one_convention

    require_one_convention(models.metadata)

    db = resolve(target)
    state = status(db)
    if not state.at_head:
        raise MigrateError(
            f"{state.database} is not at head ({len(state.pending)} revision(s) pending): "
            f"run {COMMAND} upgrade first"
        )
    with connections.connect(db, will_write=False) as connection:
        return differences(connection, models.metadata)


def verify(target: Target = None) -> list[ChecksumProblem]:
    """Check that what ran, what was shipped and what is installed agree.

    Every applied revision's recorded checksum against the shipped script (revisions
    applied before the ledger existed have nothing recorded and pass), every installed
    script against the manifest built with the package, and the release map against the
    shipped revisions. An empty list means everything matches.

    :raises MigrateError: the database cannot be read, or is a SQLite file that does not exist.
    """
    from .. import models
    from .runtime.environment import require_one_convention

    require_one_convention(models.metadata)  # alembic and the runner must name constraints alike
    db = resolve(target)
    connections.check_sqlite_file(db, will_write=False)
    if tenants.missing(db):  # reading it must not create it (a typo in the path, say)
        raise MigrateError(f"{db.masked} does not exist: nothing was applied there to verify")
    with connections.connect(db, will_write=False) as connection:
        found = integrity.problems(connection, connections.read_current(connection))
    return found + integrity.edited_scripts() + integrity.edited_checkpoints() + integrity.release_problems()


def applied_history(target: Target = None) -> list[LedgerRow]:
    """The ledger: every revision applied, reverted, stamped or failed, oldest first."""
    db = resolve(target)
    connections.check_sqlite_file(db, will_write=False)
    if tenants.missing(db):
        return []
    with connections.connect(db, will_write=False) as connection:
        return ledger.rows(connection)


def offline_sql(
    direction: Literal["upgrade", "downgrade"],
    revision_range: str,
    target: str | URL | None = None,
    *,
    use_checkpoints: bool = True,
) -> str:
    """The SQL an upgrade or downgrade would run, without a database.

    :param revision_range: ``FROM:TO`` (for ``upgrade``, a bare ``TO`` starts at base).
    :param target: only its dialect matters; nothing is connected (``use_checkpoints``: see :func:`upgrade`).
    :raises UsageError: unknown revision, or a downgrade without ``FROM:``.
    """
    db = resolve(target, need_driver=False)
    return offline.render(direction, revision_range, db.url, db.schema, use_checkpoints=use_checkpoints)


# An asyncio application's postgresql+asyncpg:// URL: each command that connects runs its sync
# code in SQLAlchemy's greenlet bridge (database/bridge.py), the CLI's and a program's calls alike.
for _name in ("upgrade", "downgrade", "current", "status", "wait_for_head", "stamp", "repair",
              "realign_checksums", "check", "drift", "verify", "applied_history", "roundtrip", "plan"):
    globals()[_name] = for_async_drivers(globals()[_name])
