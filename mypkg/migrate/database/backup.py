"""``--backup``: a copy of a SQLite file taken before a migration changes anything."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import ledger
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
        _create_like(partial, path)
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


def _create_like(copy: os.PathLike[str], original: os.PathLike[str]) -> None:
    """Create ``copy`` empty, readable by no more users than ``original``: its mode (never
    widened by the umask, since it exists before SQLite opens it) and, where allowed, its
    group. A backup of a 0600 database is 0600, not the umask's 0644."""
    status = os.stat(original)
    mode = status.st_mode & 0o777
    os.close(os.open(copy, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
    with contextlib.suppress(OSError):  # changing the group needs to be a member of it
        os.chown(copy, -1, status.st_gid)
    os.chmod(copy, mode)  # exactly the original's: the umask may have narrowed it
