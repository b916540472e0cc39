"""A failure during a migration, told in one line: which revision, why, where the database is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..database import connections, lease, locks
from ..errors import MigrateError
from ..history import graph
from ..identity import COMMAND

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy.engine import Connection

    from ..database.target import Database


def explain_failure(
    exc: Exception, failed: Script | None, connection: Connection, db: Database, *, partial: bool = False
) -> Exception:
    """One line: which revision failed, the driver's reason, where the database is now."""
    from alembic.util import CommandError

    if isinstance(exc, MigrateError) and (failed is None or isinstance(exc, (locks.PoolingError, lease.LeaseLost))):
        return exc  # the machinery's own words: the lock or the lease, not the revision
    reason = connections.first_line(exc)
    if isinstance(exc, CommandError) and failed is None:
        return MigrateError(reason)
    what = f"revision {failed.revision} ({failed.doc})" if failed is not None else "migration"
    hint = f" ({connections.LOCKED_HINT})" if connections.locked_by_another(exc) else ""
    # A refusal raised inside the revision (mypkg.batch.backfill's) speaks for itself; a
    # driver's error is named.
    named = "" if isinstance(exc, MigrateError) else f"{connections.error_name(exc)}: "
    message = f"{what} failed: {named}{reason}{hint}; "
    try:
        current = connections.read_current(connection)
        message += f"{db.masked} is at {graph.describe(current[0] if current else None)}"
    except Exception:  # noqa: BLE001 - the connection itself is gone (a server stopped, a network cut)
        message += f"the connection to {db.masked} was lost"
        if not partial:
            running = f"{failed.revision} was" if failed is not None else "the running revision was"
            return MigrateError(
                f"{message}: {running} not committed (each revision commits alone, with its version "
                f"row); {COMMAND} status tells where the database is once it answers"
            )
    if partial and failed is not None:
        message += (
            f", but DDL on MySQL/MariaDB is not transactional: what {failed.revision} ran before "
            f"failing stays (see {COMMAND} history --applied); fix the schema by hand, then "
            f"{COMMAND} repair {failed.revision} --applied or --reverted"
        )
    return MigrateError(message)
