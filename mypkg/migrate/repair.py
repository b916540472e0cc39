"""Revisions that failed part way, where DDL is not transactional (MySQL, MariaDB).

There every DDL statement commits as it runs: a revision that fails after its first
statement leaves those statements behind, and the version table still names the revision
before it. The runner records such a failure as ``partial`` in the ledger, with the
statements that ran; until an operator fixes the schema by hand and records which way
(``repair REV --applied`` or ``--reverted``, like Flyway's repair), ``status`` reports it
and ``upgrade``/``downgrade`` refuse to run over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ledger
from .errors import MigrateError, UsageError
from .identity import COMMAND

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .target import Database

#: What a failed revision's row says on a database without transactional DDL.
PARTIAL = "partial"
REPAIRED = "repaired"
#: Written as a revision starts there (its first DDL statement commits it), removed when it
#: completes: left behind, it means the migrator died during the revision.
RUNNING = "running"
NOT_TRANSACTIONAL = "DDL on MySQL/MariaDB is not transactional"


def pending_repairs(connection: Connection, *, migrator_alive: bool = False) -> dict[str, str]:
    """Revision -> what ran, for every revision whose last ledger row says ``partial``, or
    ``running`` when no migrator is alive to finish it (it died half way)."""
    latest: dict[str, tuple[str, str | None]] = {}
    for row in ledger.rows(connection):
        latest[row.revision] = (row.outcome, row.detail)
    waiting = {}
    for rev, (outcome, detail) in latest.items():
        if outcome == PARTIAL:
            waiting[rev] = detail or ""
        elif outcome == RUNNING and not migrator_alive:
            waiting[rev] = "the migrator stopped during it (killed?); what it ran is unknown: compare the schema"
    return waiting


def refuse_while_partial(connection: Connection, db: Database) -> None:
    """:raises MigrateError: a revision awaits repair."""
    waiting = pending_repairs(connection)
    if waiting:
        revision, detail = next(iter(waiting.items()))
        raise MigrateError(
            f"{db.masked} needs repair: revision {revision} failed part way ({detail}); "
            f"{NOT_TRANSACTIONAL}: fix the schema by hand, then record which way: "
            f"{COMMAND} repair {revision} --applied (or --reverted); nothing was run"
        )


def record(connection: Connection, db: Database, revision: str, *, applied: bool, force: bool) -> None:
    """The operator's decision on a partial revision, after checking the schema agrees.

    :raises UsageError: ``revision`` does not await repair.
    :raises MigrateError: the schema is not the one the decision claims (unless ``force``).
    """
    from . import baseline, graph, integrity

    waiting = pending_repairs(connection)
    if revision not in waiting:
        known = ", ".join(waiting) or "none"
        raise UsageError(f"revision {revision} does not await repair (awaiting: {known})")
    script = graph.script(revision)
    parent = graph.as_tuple(script.down_revision if script is not None else None)
    claimed = revision if applied else (parent[0] if len(parent) == 1 else "base")
    if applied:
        baseline.stamp_checked(connection, db, revision, force=force, detail="repair: applied by hand")
    elif not force:
        found = baseline.differences(connection, claimed) if claimed != "base" else []
        if found:
            raise MigrateError(
                f"{db.masked} does not have the schema of {claimed} (before {revision}): "
                f"{'; '.join(found[:3])}; nothing recorded (--force to record anyway)"
            )
    ledger.ensure(connection)
    ledger.write(
        connection,
        revision=revision,
        direction="repair",
        checksum=integrity.shipped_checksum(revision),
        started_at=ledger.now(),
        outcome=REPAIRED,
        detail="applied by hand" if applied else "reverted by hand",
    )
    connection.commit()
