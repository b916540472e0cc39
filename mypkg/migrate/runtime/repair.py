"""Revisions that failed part way, where DDL is not transactional (MySQL, MariaDB).

There every DDL statement commits as it runs: a revision that fails after its first
statement leaves those statements behind, and the version table still names the revision
before it. The runner records such a failure as ``partial`` in the ledger, with the
statements that ran; until an operator fixes the schema by hand and records which way
(``repair REV --applied`` or ``--reverted``, like Flyway's repair), ``status`` reports it
and ``upgrade``/``downgrade`` refuse to run over it. Recording the decision checks
the schema first: :func:`.baseline.record_repair`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..database import ledger
from ..errors import MigrateError
from ..identity import COMMAND

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..database.target import Database

#: What a failed revision's row says on a database without transactional DDL.
PARTIAL = "partial"
REPAIRED = "repaired"
#: Written as a revision starts there (its first DDL statement commits it), removed when it
#: completes: left behind, it means the migrator died during the revision.
RUNNING = "running"
NOT_TRANSACTIONAL = "DDL on MySQL/MariaDB is not transactional"
#: The detail of the ``running`` row a checkpoint install writes first: left behind, the
#: next upgrade drops what the install made and starts it over (no repair to record).
CHECKPOINT_INSTALL = "checkpoint install"


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
        elif outcome == RUNNING and not migrator_alive and detail != CHECKPOINT_INSTALL:
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
