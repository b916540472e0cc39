"""Offline SQL (``--sql``) that fails part way: name the revision, keep what came before.

Alembic writes ``-- Running upgrade A -> B`` before it runs B's ``upgrade()`` (and
``-- Running downgrade B -> A`` before B's ``downgrade()``), so the last such line of the
output names the revision that failed, and everything before it is the complete SQL of
the revisions that rendered.
"""

from __future__ import annotations

import re

from . import connections
from .errors import MigrateError

_RUNNING = re.compile(r"^-- Running (upgrade|downgrade) (.*?) -> (.*?)\s*$", re.MULTILINE)


class OfflineSQLError(MigrateError):
    """A revision could not be rendered; :attr:`sql` holds the SQL of those before it."""

    def __init__(self, message: str, sql: str) -> None:
        super().__init__(message)
        self.sql = sql


def failure(exc: BaseException, output: str) -> OfflineSQLError:
    """The error for ``exc`` raised while rendering, given the output produced so far."""
    found = list(_RUNNING.finditer(output))
    reason = f"{connections.error_name(exc)}: {connections.first_line(exc)}"
    if not found:
        return OfflineSQLError(f"offline SQL failed before the first revision: {reason}", "")
    last = found[-1]
    direction, lower, upper = last.groups()
    revision = upper if direction == "upgrade" else lower
    # The revision's own "BEGIN;" (one transaction per revision) comes just before it.
    start = last.start()
    before = output[:start]
    if before.rstrip().endswith("BEGIN;"):
        before = before.rstrip()[: -len("BEGIN;")]
    return OfflineSQLError(
        f"offline SQL failed in revision {revision.strip()}: {reason}; "
        "the SQL of the revisions before it was written to the output",
        before,
    )
