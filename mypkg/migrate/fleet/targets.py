"""Which targets a fleet runs over, and which of them this shard takes.

Targets come from a file (one URL per line), a SQLite glob, or both; each is known by its
identity, the URL with its secrets masked (a SQLite file by its resolved path), so a
rotated password is the same target and two lines naming one database are one target. A shard takes the targets whose stable hash
(sha256 of the identity, never Python's salted ``hash()``) falls in it: N pods of a
Kubernetes Indexed Job split a fleet with no coordinator, and never overlap.
"""

from __future__ import annotations

import glob
import hashlib
import os
from typing import NamedTuple

from ..errors import UsageError


class Target(NamedTuple):
    url: str  #: as given: what a worker connects with (may hold a secret)
    identity: str  #: the URL with its secrets masked: what reports show and shards hash

    def shard(self, count: int) -> int:
        digest = hashlib.sha256(self.identity.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % count


def target(url: str) -> Target:
    """:raises UsageError: not a database URL (the message names it, masked)."""
    from ..database.settings import mask, parse_url

    parse_url(url, need_driver=False)  # malformed, unknown dialect: a usage error now
    return Target(url, mask(_same_file_same_name(url)))


def _same_file_same_name(url: str) -> str:
    """A SQLite URL with its file's resolved path (``d/./t0.db``, ``d/t0.db`` and a symlink
    to it are one target, in one shard); any other URL as it is."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, sep, query = url[len(prefix):].partition("?")
    if path in ("", ":memory:") or path.startswith("file:"):
        return url
    try:
        return f"{prefix}{os.path.realpath(path)}{sep}{query}"
    except (UnicodeError, ValueError):  # a name no file system can take: its worker says so
        return url


def from_file(path: str) -> list[Target]:
    """One URL per line; ``#`` comments and blank lines ignored.

    :raises UsageError: the file cannot be read, or a line is not a database URL (named
        by its number), before anything runs.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise UsageError(f"--targets {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--targets {path}: not a text file of database URLs (UTF-8), one per line") from None
    found = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        try:
            found.append(target(text))
        except UsageError as exc:
            raise UsageError(f"--targets {path}, line {number}: {exc}") from None
    return found


def from_sqlite_glob(pattern: str) -> list[Target]:
    """Every file matching ``pattern`` (sorted), as a SQLite target."""
    return [target(f"sqlite:///{os.path.abspath(path)}") for path in sorted(glob.glob(pattern))
            if os.path.isfile(path)]


#: Schemas (PostgreSQL) and databases (MySQL) of the server's own, never a tenant's.
_SYSTEM_SCHEMAS = {
    "postgresql": "SELECT nspname FROM pg_namespace WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema'",
    "mysql": "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN "
             "('information_schema', 'mysql', 'performance_schema', 'sys')",
}


def from_schemas(url: str, *patterns: str) -> list[Target]:
    """Every schema (PostgreSQL) or database (MySQL, MariaDB) of ``url``'s server whose
    name matches one of the globs ``patterns`` (``tenant_*``; case matters), sorted, each a
    target carrying its ``schema=``: one listing for them all, and each schema once.

    :raises UsageError: ``url`` is not PostgreSQL or MySQL, or names a schema itself.
    :raises MigrateError: the server cannot be read.
    """
    import fnmatch

    from ..database import bridge, connections
    from ..database.settings import with_schema
    from ..database.target import resolve

    db = resolve(url)
    if db.schema is not None:
        raise UsageError("--schemas lists the schemas of --url: give the URL without schema=")
    kind = "postgresql" if db.is_postgresql else "mysql" if db.is_mysql else None
    if kind is None:
        raise UsageError(f"--schemas is for PostgreSQL and MySQL/MariaDB, not {db.backend} "
                         "(SQLite tenants: --sqlite-glob)")
    def listed() -> list[str]:
        with connections.connect(db, will_write=False) as connection:
            return [row[0] for row in connection.exec_driver_sql(_SYSTEM_SCHEMAS[kind])]

    names = bridge.call(db, listed)  # an asyncpg URL's schemas too
    return [target(with_schema(url, name)) for name in sorted(names)
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]


def unique(targets: list[Target]) -> list[Target]:
    """Duplicates (by identity) are one target; the first line naming it wins."""
    seen: dict[str, Target] = {}
    for found in targets:
        seen.setdefault(found.identity, found)
    return list(seen.values())


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (0 <= I < N), as ``--shard $(JOB_COMPLETION_INDEX)/N`` gives it.

    :raises UsageError: anything else.
    """
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise UsageError(f"--shard takes I/N, e.g. 0/4 (the pod's JOB_COMPLETION_INDEX of N), not {text!r}") from None
    if not 0 <= i < n:
        raise UsageError(f"--shard {text}: I must be at least 0 and below N")
    return i, n


def in_shard(targets: list[Target], shard: tuple[int, int] | None) -> list[Target]:
    if shard is None:
        return targets
    index, count = shard
    return [found for found in targets if found.shard(count) == index]
