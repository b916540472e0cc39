"""``--backup``: a copy of a SQLite file taken before a migration changes anything."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..database import ledger
from ..errors import MigrateError

if TYPE_CHECKING:
    from ..database.target import Database


def backup_sqlite(db: Database, current: Sequence[str]) -> str | None:
    """Copy the SQLite file with SQLite's online backup API; None when there is nothing
    to copy yet. The name says when (UTC) and at which revision."""
    import sqlite3

    path = db.sqlite_path
    if path is None or not path.exists() or path.stat().st_size == 0:
        return None
    stamp = ledger.now().strftime("%Y%m%dT%H%M%S.%fZ")
    destination = path.with_name(f"{path.name}.{stamp}.{'-'.join(current) or 'base'}.bak")
    # Written under another name and renamed when complete: a file named like a backup is one.
    partial = destination.with_name(destination.name + ".partial")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
        os.replace(partial, destination)
    except (sqlite3.Error, OSError) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise MigrateError(
            f"the backup of {db.masked} to {destination.name} failed ({exc}); nothing was migrated"
        ) from exc
    finally:
        source.close()
    return str(destination)
