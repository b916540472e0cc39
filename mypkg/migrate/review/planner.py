"""``plan``: what an upgrade will do to a database, before it runs (docs/reviewing.md).

The pending revisions run, one at a time, on a scratch copy of the database's schema at its
revision, of the same kind (a temporary SQLite file; a temporary schema, or database, on the
same PostgreSQL or MySQL server, dropped afterwards), while :mod:`.capture` watches each
statement: the locks it takes, the tables it rewrites. The target's catalog sizes the tables
they touch (:mod:`.sizes`), lint reviews the scripts, :mod:`.verdict` weighs it all. The
database itself is only read.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from .. import events
from ..database import connections, ledger, tenants
from ..database.settings import DEFAULT_LOCK_TIMEOUT
from ..database.target import Database, resolve
from ..errors import MigrateError
from ..history import graph
from ..history.manifest import load as load_manifest
from ..identity import PACKAGE, SCRATCH_PREFIX
from ..results import Plan, PlannedRevision
from .capture import Watch
from .sizes import table_sizes
from .verdict import judge

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..database.target import Target


def plan(target: Target = None, revision: str = "head", *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
         lint: bool = True, phase: str | None = None) -> Plan:
    """What upgrading ``target`` to ``revision`` will do: for each pending revision its
    statements, the lock each takes on which table, the tables it rewrites, their sizes,
    lint's findings and a verdict (:data:`~.results.VERDICTS`). ``lock_timeout`` bounds every
    wait (the scratch copy's migration lock, a table size's read). ``phase``: ``pre``, what
    ``upgrade --phase pre`` would run (the pending pre-deploy revisions); ``post``, the rest.

    :raises UsageError: unknown revision, a revision behind the database's.
    :raises MigrateError: unreachable, at a revision this package does not ship, or the
        scratch copy cannot be made (no right to create a schema or database there).
    """
    from ..history import branches, phases

    branches.require_phase(phase, revision, None)
    db = resolve(target)
    connections.check_sqlite_file(db, will_write=False)
    current = _current(db)
    if revision == "head" and len(load_manifest().heads) > 1:
        revision = "heads"  # as upgrade reads it
    # As the runner reads it: an empty database takes every revision whatever the phase.
    destination = phases.pre_deploy_destination(load_manifest(), current) if phase == phases.PRE and current \
        else revision
    pending = graph.planned(current, destination, "upgrade", strict=True)
    dialect = "mysql" if db.is_mysql else db.backend
    notes = [] if current else ["the database is empty: no table has rows, nothing waits on this upgrade"]
    if not pending:
        return Plan(db.masked, dialect, current, revision, [], notes, phase)
    watched: list[tuple[Any, Watch]] = []
    failure: tuple[Any, str] | None = None
    with _scratch(db) as scratch:
        for head in current:
            try:
                with events.only():  # building the copy is not the command's migration
                    _run(scratch, head, use_checkpoints=True, lock_timeout=lock_timeout)
            except MigrateError as exc:
                raise MigrateError(f"no plan: the scratch copy cannot be built up to {head}, where the database is: "
                                   f"{exc}") from exc
        for script in pending:
            watch = Watch(dialect)
            try:
                with watch.listening():
                    _run(scratch, script.revision, use_checkpoints=False, lock_timeout=lock_timeout)
            except MigrateError as exc:
                failure = (script, str(exc))
                break
            watched.append((script, watch))
    touched = {t for _, watch in watched for s in watch.statements for t in s.locks if t in watch.existing()}
    sizes = table_sizes(db, touched, lock_timeout=lock_timeout) if current else {}
    findings, lint_note = _lint_findings(dialect, revision, {s.revision for s in pending}) if lint else ({}, None)
    notes += [lint_note] if lint_note else []
    if dialect == "mysql":
        notes.append("MySQL and MariaDB: each DDL statement's lock is its table's metadata lock, named from the "
                     "statement; a rebuild is seen from InnoDB's table id (needs the PROCESS privilege)")
    revisions = [_planned(script, watch, dialect, sizes, findings.get(script.revision, []))
                 for script, watch in watched]
    if failure is not None:
        script, error = failure
        revisions.append(_revision(script, [], {}, (), (), {}, findings.get(script.revision, []), "fails",
                                   f"fails on a copy of the schema: {error}"))
        notes.append(f"the revisions after {script.revision} are not planned: it fails before them")
    return Plan(db.masked, dialect, current, revision, revisions, notes, phase)


def _current(db: Database) -> tuple[str, ...]:
    if tenants.missing(db):
        return ()
    with connections.connect(db, will_write=False) as connection:
        current = connections.read_current(connection)
        graph.require_known(current, db.masked, lambda unknown: ledger.plugins_of(connection, unknown))
    return tuple(current)


def _planned(script: Any, watch: Watch, dialect: str, sizes: dict[str, Any], lint: list[dict[str, str]]
             ) -> PlannedRevision:
    created, rewrites, locks = watch.created(), watch.rewritten(), watch.strongest()
    tables = {t: sizes[t] for t in sorted(locks) if t in sizes and t in watch.existing()}
    verdict, why = judge(dialect, watch.statements, locks, rewrites, set(tables), tables)
    return _revision(script, watch.statements, locks, rewrites, created, tables, lint, verdict, why)


def _revision(script: Any, statements: list[Any], locks: dict[str, str], rewrites: tuple[str, ...],
              created: tuple[str, ...], tables: dict[str, Any], lint: list[dict[str, str]], verdict: str,
              why: str) -> PlannedRevision:
    from ..history.phases import of_every
    from ..runtime.integrity import file_checksum

    said = (script.doc or "").strip().splitlines()  # a blank message (neutron's) is no first line
    return PlannedRevision(script.revision, said[0] if said else "",
                           file_checksum(script.path), statements, locks, rewrites, created, tables, lint, verdict,
                           why, of_every(load_manifest()).get(script.revision, "pre"))


def _run(scratch: Database, revision: str, *, use_checkpoints: bool, lock_timeout: float) -> None:
    from ..runtime import runner

    runner.run("upgrade", scratch, revision, on_applied=None, lock_timeout=lock_timeout, statement_lock_timeout=None,
               on_wait=None, use_checkpoints=use_checkpoints)


def _lint_findings(dialect: str, revision: str, pending: set[str]) -> tuple[dict[str, list[dict[str, str]]], str | None]:
    """lint's findings on the pending revisions (linted from base: a type a revision
    changes is known from the revisions before it)."""
    from ..checks import lint

    found, squawked, _unchecked = lint.lint(f"base:{revision}", dialect, lint.load_settings())
    by_revision: dict[str, list[dict[str, str]]] = {}
    for finding in found:
        if finding.revision in pending:
            by_revision.setdefault(finding.revision, []).append(
                {"rule": finding.rule, "statement": finding.statement, "fix": finding.fix})
    note = None if squawked or dialect != "postgresql" else (
        f"squawk is not installed, so only {PACKAGE}'s own lint rules ran (pip install squawk-cli)")
    return by_revision, note


@contextlib.contextmanager
def _scratch(db: Database) -> Iterator[Database]:
    """An empty place of the same kind as ``db``, dropped afterwards: PostgreSQL's a database
    of its own when the role may create one, else the place a checkpoint's replay takes (a
    schema beside the target's, a database on MySQL's server, a temporary SQLite file)."""
    from ..checks.checkpoint import scratch

    if db.is_postgresql:
        with tenants.scratch_database(db, f"{SCRATCH_PREFIX}plan_{uuid.uuid4().hex[:12]}") as made:
            if made is not None:
                yield Database(made, db.masked, db.backend, None)
                return
    server = db.url.render_as_string(hide_password=False) if db.is_postgresql or db.is_mysql else None
    with scratch(server, purpose="plan") as place:
        yield place
