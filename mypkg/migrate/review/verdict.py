"""A revision's verdict, from what it did on the scratch copy and how big the target's tables
are: ``ok`` (nothing the application does waits), ``brief`` (a strong lock on a catalog
change: short, but queued behind a long transaction it stalls every query behind it),
``blocking`` (reads or writes wait for work proportional to a table's size: a rewrite, an
index build, a data change under a strong lock). Tables the revision creates count for
nothing: no one uses them yet.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .capture import LOCK_MODES, METADATA_LOCK, SQLITE_LOCK, table_named

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ..results import PlannedStatement, TableSize

#: PostgreSQL locks that make writes wait (every one from SHARE up conflicts with ROW
#: EXCLUSIVE, the lock of INSERT, UPDATE and DELETE); ACCESS EXCLUSIVE makes reads wait too.
BLOCKS_WRITES = frozenset(LOCK_MODES[LOCK_MODES.index("ShareLock"):])
_DATA = re.compile(r"^\s*(UPDATE|DELETE|INSERT\s+INTO\s+\S+\s*(\([^)]*\)\s*)?SELECT)\b", re.IGNORECASE)
_INDEX_BUILD = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\b(?!\s+CONCURRENTLY)", re.IGNORECASE)
#: An ALTER TABLE that builds an index over the rows (a unique constraint, a primary key)...
_BUILDS_INDEX = re.compile(r"\bADD\s+(CONSTRAINT\s+\S+\s+)?(UNIQUE|PRIMARY\s+KEY)\b(?![^;]*\bUSING\s+INDEX\b)",
                           re.IGNORECASE)
#: ...or reads every row to check it: a foreign key or check added valid, a column made NOT NULL.
_SCANS = re.compile(r"\bADD\s+(CONSTRAINT\s+\S+\s+)?(FOREIGN\s+KEY|CHECK)\b(?![^;]*\bNOT\s+VALID\b)"
                    r"|\bSET\s+NOT\s+NULL\b", re.IGNORECASE)


#: An ALTER TABLE action adding a column (not a constraint)...
_ADDS_COLUMN = re.compile(r"^\s*ADD\s+(COLUMN\s+)?(?!(CONSTRAINT|CHECK|PRIMARY|UNIQUE|FOREIGN|EXCLUDE)\b)",
                          re.IGNORECASE)
#: ...that the database fills for the rows there: no value needed from them.
_FILLED = re.compile(r"\b(DEFAULT|GENERATED|IDENTITY|SERIAL|BIGSERIAL|SMALLSERIAL|AUTO_INCREMENT)\b", re.IGNORECASE)


def adds_not_null_without_default(sql: str) -> bool:
    """``ALTER TABLE t ADD COLUMN c TYPE NOT NULL`` with no default: fine on an empty table
    (the scratch copy), refused on one with rows."""
    if not re.match(r"\s*ALTER\s+TABLE\b", sql, re.IGNORECASE):
        return False
    actions, depth, start = [], 0, 0
    for at, char in enumerate(sql):  # the actions, split at the commas outside parentheses
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            actions.append(sql[start:at])
            start = at + 1
    actions.append(sql[start:])
    actions[0] = re.sub(r"^\s*ALTER\s+TABLE\s+(IF\s+EXISTS\s+)?(ONLY\s+)?\S+", "", actions[0], flags=re.IGNORECASE)
    return any(_ADDS_COLUMN.match(action) and re.search(r"\bNOT\s+NULL\b", action, re.IGNORECASE)
               and not _FILLED.search(action) for action in actions)


def _counted_rows(size: TableSize | None) -> bool:
    """Rows known to be there (an estimate above zero counts; unknown does not: it would fail
    a plan on a guess)."""
    return size is not None and size.rows is not None and size.rows > 0


def size_text(size: TableSize | None) -> str:
    """``1,000,000 rows, 42.0 MB``; ``~`` before an estimate; ``size unknown``."""
    if size is None or (size.rows is None and size.bytes is None):
        return "size unknown"
    parts = []
    if size.rows is not None:
        parts.append(f"{'~' if size.estimated else ''}{size.rows:,} rows")
    if size.bytes is not None:
        parts.append(_bytes(size.bytes))
    return ", ".join(parts)


def _bytes(count: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


def judge(dialect: str, statements: Sequence[PlannedStatement], locks: dict[str, str], rewrites: Sequence[str],
          existing: Collection[str], tables: dict[str, TableSize]) -> tuple[str, str]:
    """The verdict and its one-line reason. ``existing``: the tables there before the
    revision (what it creates, batch mode's temporary copies, no one waits on)."""
    def has_rows(table: str) -> bool:
        """Unknown counts as rows (the careful reading); a table the target lacks is made by a
        revision before this one in the same upgrade: empty."""
        if table not in tables:
            return False
        return tables[table].rows is None or tables[table].rows > 0  # type: ignore[operator]

    def sized(table: str) -> str:
        return f"{table} ({size_text(tables.get(table))})"

    def wait(table: str) -> str:
        if dialect == "sqlite":
            return "other writers wait"
        return "its reads and writes wait" if locks[table] == "AccessExclusiveLock" else "writes to it wait"

    created = sorted({t for t in locks if t not in existing})
    existing = {table for table in locks if table in existing}
    for statement in statements:  # what the empty copy let through but the rows will not (MySQL fills in 0, '')
        table = table_named(statement.sql)
        if dialect == "postgresql" and table in existing and adds_not_null_without_default(statement.sql) and _counted_rows(tables.get(table)):
            return "fails", (f"adds a NOT NULL column without a default to {sized(table)}: the rows there have no "
                             "value for it (give it a server default, or add it nullable, backfill, then SET NOT NULL)")
    rebuilt = [t for t in rewrites if t in existing and has_rows(t)]
    if rebuilt:
        if dialect == "postgresql":
            return "blocking", (f"rewrites {', '.join(map(sized, rebuilt))} holding {locks.get(rebuilt[0], 'its lock')}: "
                                f"{wait(rebuilt[0]) if rebuilt[0] in locks else 'its reads and writes wait'} until the "
                                "revision commits")
        if dialect == "sqlite":
            return "blocking", (f"rebuilds {', '.join(map(sized, rebuilt))} (batch mode's copy) holding the "
                                f"{SQLITE_LOCK}: other writers wait until the revision commits")
        return "blocking", (f"rebuilds {', '.join(map(sized, rebuilt))}: a copying ALTER makes writes wait "
                            "until it ends (ALGORITHM=INPLACE, LOCK=NONE lets them through where allowed)")
    strong = sorted(t for t in existing if locks[t] in BLOCKS_WRITES or locks[t] in (METADATA_LOCK, SQLITE_LOCK))
    for statement in statements:
        table = table_named(statement.sql)
        if table not in existing or not has_rows(table) or table not in strong or dialect == "mysql":
            continue  # MySQL's index builds and constraint checks run online, its row changes lock rows
        if _INDEX_BUILD.match(statement.sql) or _BUILDS_INDEX.search(statement.sql):
            return "blocking", (f"builds an index on {sized(table)} holding {locks[table]}: {wait(table)} until "
                                "the revision commits" + (" (CREATE INDEX CONCURRENTLY, then ADD CONSTRAINT ... "
                                                          "USING INDEX, lets them through)"
                                                          if dialect == "postgresql" else ""))
        if _SCANS.search(statement.sql):
            return "blocking", (f"checks every row of {sized(table)} holding {locks[table]}: {wait(table)} "
                                "until the revision commits (add it NOT VALID, then VALIDATE CONSTRAINT)")
        if _DATA.match(statement.sql):
            return "blocking", (f"changes the rows of {sized(table)} holding {locks[table]}: {wait(table)} "
                                "until the revision commits (a background backfill would not: "
                                "docs/background-backfills.md)")
    if strong:
        modes = sorted({locks[t] for t in strong}, key=lambda m: LOCK_MODES.index(m) if m in LOCK_MODES else 0)
        if dialect == "sqlite":
            return "brief", (f"holds the {SQLITE_LOCK} to change {', '.join(map(sized, strong))}: other writers "
                             "wait a moment (up to their busy timeout)")
        return "brief", (f"takes {' and '.join(modes)} on {', '.join(map(sized, strong))}: a moment's work, but "
                         "queued behind a long transaction it makes every query behind it wait"
                         + (" (--statement-lock-timeout bounds that)" if dialect == "postgresql" else ""))
    if existing:
        return "ok", f"no lock that makes reads or writes wait ({', '.join(sorted(existing))})"
    return "ok", "touches no existing table" if not created else f"only new tables ({', '.join(created)})"
