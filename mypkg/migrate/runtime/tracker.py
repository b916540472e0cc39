"""What the run loop knows of the revision running: its clock, its ledger rows, what it
changed. Hooked to the migration connection's events (``begin``, before and after each
statement) and to Alembic's ``on_version_apply``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import events
from ..database import ledger, locks
from ..history import graph, phases
from ..history.manifest import load as load_manifest
from ..results import AppliedRevision
from . import integrity, repair

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: Statements that change nothing: never counted as what a revision left behind.
_READS = frozenset({"SELECT", "SHOW", "SET", "DESCRIBE", "EXPLAIN", "BEGIN", "START", "COMMIT", "ROLLBACK"})


class Tracker:
    """Times each revision and reports it only once it committed.

    A revision starts at the first transaction after the previous one was recorded (an
    autocommit block inside it begins further transactions: the clock keeps running);
    it is recorded by Alembic's ``on_version_apply`` inside its transaction, and handed
    to ``on_applied`` when the next transaction begins or the run ends, that is after
    its commit. What ``on_applied`` does (printing to a closed pipe, say) never decides
    the migration.
    """

    def __init__(
        self,
        connection: Connection,
        session: locks.Session,
        on_applied: Callable[[AppliedRevision], None] | None,
        settings: list[str],
        *,
        running: list[str] | None = None,
        direction: str = "upgrade",
        plan: list[Any] | None = None,
    ) -> None:
        #: Where DDL is not transactional, the plan: a ledger row as each revision starts.
        self.running = running
        self.direction = direction
        #: The scripts to run, in order: whose start each revision's first transaction tells.
        self.plan = plan or []
        self.running_row: int | None = None
        self.stopped = False
        self.connection = connection
        self.session = session
        self.on_applied = on_applied
        self.settings = settings
        self.applied: list[AppliedRevision] = []
        self.pending: list[AppliedRevision] = []
        self.in_revision = False
        self.clock = time.perf_counter()
        self.started_at = ledger.now()
        self.changes: list[str] = []  #: statements of the running revision that changed things
        self.running_statement: str | None = None  #: one that changes things, sent, not yet answered

    def begin(self, connection: Connection) -> None:
        if self.stopped:
            return
        self.committed()
        if not self.in_revision:
            self.in_revision = True
            self.clock, self.started_at = time.perf_counter(), ledger.now()
            self.changes = []
            self.running_statement = None
            step = len(self.applied) + len(self.pending)
            if step < len(self.plan):
                script = self.plan[step]
                shipped = load_manifest()
                events.emit(events.REVISION_START, revision=script.revision, message=script.doc,
                            direction=self.direction, plugin=shipped.owner.get(script.revision),
                            phase=phases.of_every(shipped).get(script.revision))
            if self.running is not None and step < len(self.running):
                # Committed by the revision's first DDL statement; removed as it completes.
                self.running_row = ledger.write(
                    connection, revision=self.running[step], direction=self.direction,
                    checksum=None, started_at=self.started_at, outcome=repair.RUNNING,
                )
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # an autocommit block: no transaction to scope settings to
        for statement in self.settings:
            connection.exec_driver_sql(statement)

    def statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        """Remember what the revision ran that changes the database: where DDL is not
        transactional (MySQL), a failure leaves it behind."""
        words = statement.split()
        if (self.in_revision and words and words[0].upper() not in _READS
                and "alembic_version" not in statement and ledger.TABLE not in statement):
            self.running_statement = " ".join(words)[:120]

    def statement_done(self, *_args: Any) -> None:
        """The server answered: the statement ran (one it refused raised instead, and did nothing)."""
        change, self.running_statement = self.running_statement, None
        if change is not None and (not self.changes or self.changes[-1] != change):  # a backfill's batches: once
            self.changes.append(change)

    def ran(self, *, including_running: bool) -> list[str]:
        """What the revision changed; ``including_running``: and the statement under way, when
        whether it ran is unknown (a stop, a lost connection)."""
        return self.changes + ([self.running_statement] if including_running and self.running_statement else [])

    def record(self, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        # Up or down, up_revision_id names the script that just ran.
        found = graph.script(step.up_revision_id)
        entry = AppliedRevision(
            revision=step.up_revision_id,
            message=found.doc if found is not None else "",
            direction="upgrade" if step.is_upgrade else "downgrade",
            seconds=time.perf_counter() - self.clock,
            plugin=load_manifest().owner.get(step.up_revision_id),
        )
        # Still inside the revision's transaction: the row commits with it, and the
        # INSERT tells which server session runs it (PostgreSQL).
        server_pid = ledger.write(
            self.connection,
            revision=entry.revision,
            direction=entry.direction,
            # Of the file that ran, which --ignore-checksums may let differ from the manifest.
            checksum=integrity.file_checksum(found.path) if found is not None else None,
            started_at=self.started_at,
            outcome="applied" if step.is_upgrade else "reverted",
            returning_server_pid=True,
        )
        ledger.clear_backfills(self.connection, entry.revision)
        # The commit is about to happen: in the lock holder's session, or not at all.
        self.session.verify(server_pid if self.connection.dialect.name == "postgresql" else None)
        if self.running_row is not None:
            ledger.delete(self.connection, self.running_row)
            self.running_row = None
        self.pending.append(entry)
        self.in_revision = False

    def committed(self) -> None:
        """Everything recorded so far has committed: report it."""
        done, self.pending = self.pending, []
        for entry in done:
            self.applied.append(entry)
            tell_applied(entry, self.on_applied)

    def failed(self, error: str) -> None:
        """The running revision failed or was stopped (rolled back, or partial on MySQL)."""
        step = len(self.applied)
        if step < len(self.plan):
            events.emit(events.REVISION_FAILED, revision=self.plan[step].revision, direction=self.direction,
                        seconds=time.perf_counter() - self.clock, error=error)

    def rolled_back(self) -> None:
        self.pending.clear()
        self.in_revision = False


#: A revision committed: the event, then the caller's callback.
tell_applied = events.applied
