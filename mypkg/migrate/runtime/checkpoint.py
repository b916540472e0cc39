"""An empty database upgraded past a checkpoint gets it in one step, not by replay.

Under the migration lock, when the database has no revision and no table and the
upgrade's plan runs a checkpoint's revision and all its ancestors, the runner installs
the newest such checkpoint (:mod:`..history.checkpoints`) in one transaction: its schema
and rows, the version table at its revision, and a ledger row (``checkpoint``, with its
checksum); the revisions after it then run as usual. A database at any revision keeps
replaying, and so does a dialect the checkpoint holds no form for.

MySQL and MariaDB commit each DDL statement: the install writes a ``running`` ledger row
first, drops what it created if it fails, and a run that finds that row left by a killed
migrator (and the database still at no revision) drops the tables and starts over: the
database was empty before, so nothing but the checkpoint's tables can be there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..database import connections, ledger
from ..errors import MigrateError
from ..history import checkpoints, graph, scripts
from ..identity import CHECKPOINT_INSTALLED, COMMAND, VERSION_TABLE
from ..results import AppliedRevision
from .repair import CHECKPOINT_INSTALL as _DETAIL
from .repair import RUNNING

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy.engine import Connection

    from ..database.target import Database

#: The ledger outcome of a checkpoint installed.
CHECKPOINT = CHECKPOINT_INSTALLED


class Route(NamedTuple):
    """A fresh install through ``checkpoint``, decided from the manifest alone."""

    checkpoint: checkpoints.Checkpoint
    keep: frozenset[str]  #: the revisions still to run after it, and its own
    covered: frozenset[str]  #: its revision and every ancestor: what it installs


def route(connection: Connection, revision: str) -> Route | None:
    """Before Alembic loads the graph: an empty database upgraded to ``revision`` (an id,
    ``head`` or ``heads``) through a checkpoint, when the revisions after it build on it
    alone (a branch from before it needs the whole graph: None, and the runner takes
    the usual way, where :func:`choose` still finds the checkpoint)."""
    from ..database import snapshot
    from ..history.manifest import load

    if not checkpoints.shipped():
        return None
    shipped = load()
    targets = shipped.heads if revision in ("head", "heads") else (revision,) if revision in shipped.by_id else None
    if targets is None or ledger.existing_tables(connection):
        return None
    planned = set(shipped.ancestors(targets))
    found = checkpoints.newest_within(planned, lambda rev: set(shipped.ancestors((rev,))),
                                      snapshot.dialect_key(connection))
    if found is None:
        return None
    covered = frozenset(shipped.ancestors((found.revision,)))
    keep = frozenset(planned - covered) | {found.revision}
    for rev in keep - {found.revision}:
        if not set(shipped.by_id[rev].down_revisions) <= keep:
            return None
    return Route(found, keep, covered)


def choose(connection: Connection, plan: Sequence[Script]) -> checkpoints.Checkpoint | None:
    """The checkpoint to install before ``plan`` (from no revision), if any: the database
    must hold no table (its runner's own aside)."""
    from ..database import snapshot

    if not plan or not checkpoints.shipped() or ledger.existing_tables(connection):
        return None
    planned = {script.revision for script in plan}
    return checkpoints.newest_within(planned, lambda rev: graph.ancestors((rev,)),
                                     snapshot.dialect_key(connection))


def refuse_edited(found: checkpoints.Checkpoint, where: str) -> None:
    """:raises MigrateError: the checkpoint's content is not what it declares (a hand edit)."""
    if found.actual != found.checksum:
        raise MigrateError(
            f"{where}: checkpoint {found.path.name} was changed after it was written (its content's "
            f"sha256 is {found.actual[:12]}…, it declares {found.checksum[:12]}…); nothing was run; "
            f"write it again ({COMMAND} checkpoint {found.revision}), or upgrade with --no-checkpoint"
        )


def install(connection: Connection, db: Database, found: checkpoints.Checkpoint) -> AppliedRevision:
    """Install ``found``'s form for this dialect, stamp its revision, record it; one
    transaction (where DDL is transactional).

    :raises MigrateError: the checkpoint file was edited, or a statement failed (the
        database is left empty, at no revision).
    """
    from alembic.runtime.migration import MigrationContext

    from ..database import snapshot
    from .failures import explain_failure

    refuse_edited(found, db.masked)
    form = found.forms[snapshot.dialect_key(connection)]
    started, clock = ledger.now(), time.perf_counter()
    if connection.in_transaction():
        connection.commit()
    running = None
    if db.is_mysql:  # each statement commits: say so first, as a revision's run does
        running = ledger.write(connection, revision=found.revision, direction="upgrade", checksum=found.checksum,
                               started_at=started, outcome=RUNNING, detail=_DETAIL)
        connection.commit()
    try:
        snapshot.install(connection, form)
        context = MigrationContext.configure(connection, opts={
            "version_table": VERSION_TABLE, "version_table_schema": connections.tenant_schema(connection)})
        context.stamp(scripts.script_directory(), found.revision)
        if running is not None:
            ledger.delete(connection, running)
        seconds = time.perf_counter() - clock
        ledger.write(connection, revision=found.revision, direction="upgrade", checksum=found.checksum,
                     started_at=started, outcome=CHECKPOINT,
                     detail=checkpoints.ledger_detail(found))
        connection.commit()
    except Exception as exc:
        if connection.in_transaction():
            connection.rollback()
        if db.is_mysql:
            _drop(connection, snapshot.created_tables(form), running)
        raise explain_failure(exc, None, connection, db) from exc
    return AppliedRevision(found.revision, describe(found), "upgrade", seconds)


describe = checkpoints.describe


def recover_interrupted(connection: Connection, current: tuple[str, ...]) -> None:
    """MySQL/MariaDB: a checkpoint install a killed migrator left half done (a ``running``
    row of it last, no revision): drop its tables and its row; the install starts over."""
    if current:
        return
    rows = ledger.rows(connection)
    if rows and rows[-1].outcome == RUNNING and rows[-1].detail == _DETAIL:
        _drop(connection, ledger.existing_tables(connection), rows[-1].id)


def _drop(connection: Connection, tables: list[str], running: int | None) -> None:
    import contextlib

    with contextlib.suppress(Exception):
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        for table in tables:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS `{table.replace('`', '``')}`")
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        if running is not None:
            ledger.delete(connection, running)
        connection.commit()
