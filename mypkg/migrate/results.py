"""What the API returns: plain, immutable values, cheap to import.

Kept apart from :mod:`mypkg.api` so that the fast path (:mod:`mypkg.fastpath`) can
build the very same :class:`Status` without importing the API's dependencies.

Typed named tuples rather than dataclasses: the same typed, immutable values, but
importing :mod:`dataclasses` (and the :mod:`inspect` it pulls in) and generating each
class's methods costs about 14 ms per start, a quarter of a no-op ``upgrade``. At run time
the classes are made by :func:`collections.namedtuple` from the same class bodies
(:class:`_NamedTuple`): ``typing`` and its ``NamedTuple`` machinery cost ``status`` 4 ms more.
"""

from __future__ import annotations

import collections

from .identity import BACKFILLING, CHECKSUM_OUTCOMES, REALIGNED  # noqa: F401 - where they were first

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as dt
    from typing import Any, Literal, NamedTuple
else:
    class _Typed(type):
        """``class X(NamedTuple): field: type = default`` made as typing's NamedTuple makes
        it (a :func:`collections.namedtuple`, the body's methods and properties copied onto
        it), without importing typing."""

        def __new__(mcs, name: str, bases: tuple[type, ...], body: dict[str, Any]) -> type:
            if not bases:
                return super().__new__(mcs, name, bases, body)
            fields = list(body.get("__annotations__", {}))
            defaults = [body[field] for field in fields if field in body]
            made = collections.namedtuple(name, fields, defaults=defaults, module=body["__module__"])
            for key, value in body.items():
                if key not in fields and key not in ("__module__", "__qualname__", "__dict__", "__weakref__"):
                    setattr(made, key, value)
            return made

    class NamedTuple(metaclass=_Typed):
        pass


class AppliedRevision(NamedTuple):
    """One revision run against the database, in one transaction."""

    revision: str
    message: str
    direction: Literal["upgrade", "downgrade"]
    seconds: float
    #: The installed plugin that ships it (docs/plugins.md); None for the package's own.
    plugin: str | None = None
    #: When a deploy runs it: ``pre`` (before the new release starts) or ``post`` (after
    #: no node runs the old one; docs/deploying.md).
    phase: str = "pre"


class MigrationResult(NamedTuple):
    """What an upgrade or downgrade did."""

    database: str  #: the URL, password masked
    before: tuple[str, ...]
    after: tuple[str, ...]
    applied: list[AppliedRevision]
    backup: str | None = None  #: the SQLite backup file written first, if asked for


class ChecksumProblem(NamedTuple):
    """An applied revision whose shipped script no longer matches what ran."""

    revision: str
    #: mismatch: the script changed since it ran here; missing script: it ran here and is
    #: no longer shipped; unknown revision: the database is at a revision not shipped;
    #: edited script: the installed file differs from the one built; bad release: the
    #: release map names no shipped revision (``revision`` is then the version); edited
    #: checkpoint: a checkpoint file's content differs from the checksum it declares.
    kind: Literal["mismatch", "missing script", "unknown revision", "edited script", "edited checkpoint",
                  "bad release"]
    detail: str


class RevisionInfo(NamedTuple):
    revision: str
    down_revisions: tuple[str, ...]
    message: str
    is_head: bool
    #: The installed plugin that ships it (docs/plugins.md); None for the package's own.
    plugin: str | None = None
    #: When a deploy runs it: ``pre`` (before the new release starts) or ``post`` (after
    #: no node runs the old one; docs/deploying.md).
    phase: str = "pre"


class BackfillProgress(NamedTuple):
    """Where a batched data migration (:func:`mypkg.batch.backfill`) stands."""

    revision: str
    table: str
    done: int  #: rows updated so far, over every run of this backfill
    total: int  #: rows done plus rows still matching when this run started
    last_key: object  #: the primary key the last committed batch ended at
    seconds: float = 0.0  #: this run's time so far
    resumed_at: int = 0  #: rows an earlier, interrupted run had done

    @property
    def rate(self) -> float:
        """Rows per second in this run (0 before its first batch)."""
        return (self.done - self.resumed_at) / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at this run's rate, None before it has one."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None


class BackgroundBackfill(NamedTuple):
    """A backfill a revision queued for the workers (:func:`mypkg.batch.backfill` with
    ``background=True``), as ``status`` and ``backfill status`` show it."""

    name: str  #: ``REV:TABLE``, what ``backfill pause|resume|cancel`` take
    revision: str
    table: str
    #: queued, paused, failed (its error kept; resume queues it again), finished, cancelled
    state: str
    done: int  #: rows updated so far
    total: int  #: rows done plus rows matching when it was queued
    seconds: float  #: worker time spent on it
    error: str | None = None

    @property
    def rate(self) -> float:
        """Rows per second of worker time (0 before its first batch)."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Worker seconds left at that rate; None before it has one."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


class Status(NamedTuple):
    """Where a database stands against the revisions this package ships."""

    database: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    applied: list[RevisionInfo]
    pending: list[RevisionInfo]
    #: Revisions that failed part way on a database without transactional DDL (MySQL,
    #: MariaDB) and await an operator's ``repair``.
    needs_repair: tuple[str, ...] = ()
    #: Data migrations stopped part way (killed, failed): ``upgrade`` continues each one.
    interrupted: tuple[BackfillProgress, ...] = ()
    #: Background backfills not finished (queued, paused, failed): workers run them.
    background: tuple[BackgroundBackfill, ...] = ()

    @property
    def at_head(self) -> bool:
        # As Alembic judges it: a head reached through ``depends_on`` is applied though its
        # row is folded into the dependent's (a plugin depending on the core's head).
        return not self.pending and not self.needs_repair and set(self.current) <= set(self.heads)

    def pending_in(self, phase: str) -> list[RevisionInfo]:
        """The pending revisions of one deploy phase (``pre``, ``post``)."""
        return [rev for rev in self.pending if rev.phase == phase]

    def ready_for(self, phase: str | None) -> bool:
        """``pre``: no pre-deploy revision pending, the new release can start (post-deploy
        ones wait for the old release to go); ``post`` or None: at head."""
        if phase == "pre":
            return not self.pending_in("pre") and not self.needs_repair
        return self.at_head


class Drift(NamedTuple):
    """A database against the schema its applied revision builds (:func:`mypkg.drift`)."""

    database: str
    current: tuple[str, ...]  #: the revision(s) it is at; empty: base
    differences: list[str]  #: one line each; empty: no drift

    @property
    def drifted(self) -> bool:
        return bool(self.differences)


class TableSize(NamedTuple):
    """A table's size from the target's catalog, as ``plan`` reads it."""

    rows: int | None  #: None: unknown (a large PostgreSQL table never analyzed)
    bytes: int | None  #: with its indexes; None where the catalog does not say
    estimated: bool = False  #: the catalog's estimate (PostgreSQL's reltuples, InnoDB's)


class PlannedStatement(NamedTuple):
    """One statement a pending revision runs, as it ran on a scratch copy of the same kind."""

    sql: str
    #: table -> the lock this statement takes on it (new, or stronger than the revision held)
    locks: dict[str, str]
    rewrites: tuple[str, ...]  #: tables it rewrote (new storage: relfilenode, rootpage, InnoDB id)
    outside_transaction: bool = False  #: an autocommit block's (CONCURRENTLY): its lock ends with it


class PlannedRevision(NamedTuple):
    """What one pending revision will do (:func:`mypkg.plan`)."""

    revision: str
    message: str
    checksum: str | None  #: sha256 of the script reviewed: ``upgrade --plan`` runs only that one
    statements: list[PlannedStatement]
    locks: dict[str, str]  #: table -> the strongest lock held to the revision's commit
    rewrites: tuple[str, ...]
    created: tuple[str, ...]  #: tables the revision creates (nobody waits on those)
    tables: dict[str, TableSize]  #: the existing tables it touches, sized from the target
    lint: list[dict[str, str]]  #: lint's findings on it: rule, statement, fix
    verdict: str  #: ok, brief, blocking, or fails (see :data:`VERDICTS`)
    why: str  #: the verdict's reason, one line
    phase: str = "pre"


#: ``plan``'s verdicts, mildest first: nothing waits; readers or writers wait a moment (a
#: catalog change under a strong lock, which still queues behind long transactions); they
#: wait for work proportional to a table's size; it fails on a copy of the schema.
VERDICTS = ("ok", "brief", "blocking", "fails")


class Plan(NamedTuple):
    """What an upgrade will do to a database before it runs (:func:`mypkg.plan`)."""

    database: str  #: the URL, password masked
    dialect: str  #: postgresql, mysql (MariaDB too) or sqlite
    current: tuple[str, ...]  #: the revision(s) the database is at when planned
    destination: str  #: the revision asked for (an id, head or heads)
    revisions: list[PlannedRevision]
    notes: list[str]
    #: ``pre``: the pending pre-deploy revisions only (a rolling deploy's first step); ``post``:
    #: the rest; None: every pending revision (docs/deploying.md)
    phase: str | None = None

    @property
    def verdict(self) -> str:
        """The worst of the revisions' verdicts (ok when nothing is pending)."""
        return max((rev.verdict for rev in self.revisions), key=VERDICTS.index, default="ok")


class LedgerRow(NamedTuple):
    """One row of the ledger (:mod:`mypkg.ledger`), oldest first in ``applied_history``."""

    id: int
    revision: str
    direction: str  #: upgrade, downgrade or stamp
    checksum: str | None  #: sha256 of the script as shipped, when it ran
    package_version: str
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_ms: float
    outcome: str  #: applied, reverted, stamped, failed, partial (MySQL) or repaired
    detail: str | None  #: the error, for failures
    #: The plugin that shipped the revision; None for the package's own (and rows written
    #: before plugins existed).
    plugin: str | None = None
