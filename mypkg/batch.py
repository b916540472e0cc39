"""Long data migrations in revision scripts: batched, resumable, visible.

Inside a revision's ``upgrade()``::

    import sqlalchemy as sa
    from alembic import op
    from mypkg.batch import backfill, resuming

    def upgrade() -> None:
        if not resuming():          # an interrupted run already committed this
            op.add_column("note", sa.Column("slug", sa.String(200)))
        backfill("note", values={"slug": sa.func.lower(sa.column("body"))}, where="slug IS NULL")

It runs the same under ``alembic upgrade`` and ``mypkg-migrate upgrade``. See
:func:`backfill` for what it promises.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .migrate.results import BackfillProgress
from .migrate.runtime.backfill import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["DEFAULT_BATCH_SIZE", "BackfillProgress", "backfill", "resuming"]


def backfill(
    table: str | sa.Table,
    values: Mapping[str, Any],
    where: str | sa.ColumnElement[bool] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    on_progress: Callable[[BackfillProgress], None] | None = None,
) -> int:
    """Set ``values`` on the rows of ``table`` matching ``where``, ``batch_size`` rows of
    primary key at a time, each batch in its own transaction; returns the rows updated.

    - The revision's transaction commits first: the DDL before the backfill is in place,
      and the revision is not atomic any more (as with Alembic's autocommit block).
    - Each batch commits with the backfill's ledger row (rows done, of how many, last
      key). Interrupted (killed, a failed batch, a lost connection), every committed batch
      stays and ``status`` shows the backfill; the next ``upgrade`` runs the revision again
      and the backfill continues after the last key. Statements before it run again too:
      guard them with :func:`resuming`, or put them in the revision before.
    - ``where`` (SQL text or a SQLAlchemy expression) should select only the rows still to
      do (``"slug IS NULL"``): then running it twice changes nothing.
    - ``values`` maps column names to values or SQL expressions (``sa.column("body")``
      names a column of the row). ``table`` needs a single-column primary key. Memory stays
      constant: no row is fetched into Python.
    - Progress: ``on_progress`` if given; else what the runner was told (stderr for the
      command, ``-q`` silences it; the API's ``on_progress``); under plain ``alembic``, stderr.
    - With ``--sql`` (offline), one plain ``UPDATE``.

    SQLite, PostgreSQL and MySQL/MariaDB.
    """
    from alembic import op

    from .migrate.runtime import backfill as machinery

    return machinery.run(table, values, where, batch_size, on_progress, _calling_revision(), op.get_context())


def resuming() -> bool:
    """True when this revision's earlier run stopped part way through its backfill: the
    statements before it committed then and must not run again."""
    from alembic import op

    from .migrate.runtime import backfill as machinery

    return machinery.resuming(_calling_revision(), op.get_context())


def _calling_revision() -> str:
    """The ``revision`` of the script calling us: Alembic's scripts declare it at module
    level, and both commands run the same scripts, so no argument is needed."""
    frame = sys._getframe(2)
    while frame is not None:
        revision = frame.f_globals.get("revision")
        if isinstance(revision, str) and "down_revision" in frame.f_globals:
            return revision
        frame = frame.f_back  # type: ignore[assignment]
    from .migrate.errors import UsageError

    raise UsageError("backfill() and resuming() are for revision scripts: call them from upgrade() or downgrade()")
