"""``roundtrip``: every revision proven to keep the rows it should (docs/roundtrip.md).

On a scratch database, for each revision: fill every table with generated rows
(:mod:`.rows`), snapshot them, upgrade one step, check that every row of every column the
revision did not change is unchanged; downgrade, check the tables equal the snapshot;
upgrade again. Schema tests (pytest-alembic's, the stairway) prove each step's schema;
this proves its data: a rebuild that forgets a column's values, a narrowing type change,
a downgrade that cannot bring back what its upgrade moved, an update never reversed.

A revision declares the columns it changes on purpose with a module-level
``roundtrip_changes = {"table.column": "why"}``: its upgrade is not compared on them (its
downgrade still must bring them back).
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..database import connections, ledger, settings
from ..database.settings import DEFAULT_LOCK_TIMEOUT
from ..database.target import Target, resolve
from ..errors import MigrateError, UsageError
from ..history import graph
from ..runtime import runner
from . import rows as generated
from .table_report import locks_taken, relfilenodes

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

    from ..database.target import Database

#: The module-level name a revision declares its deliberate changes under.
MARKER = "roundtrip_changes"

class Finding(NamedTuple):
    """Rows a step did not keep."""

    revision: str
    table: str
    column: str | None  #: None: whole rows (lost, or left behind by a downgrade)
    direction: str  #: upgrade, downgrade, or upgrade again
    rows: int  #: how many rows differ
    example: str  #: one of them, masked when the column's name looks secret

    def line(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{self.revision}  {where}  {self.direction}: {self.example}"


class Step(NamedTuple):
    """One revision round-tripped: rows per table before it, seconds per move; with
    ``report`` on PostgreSQL, the strongest lock each move took per table, and the tables
    its upgrade rewrote (a new relfilenode)."""

    revision: str
    message: str
    rows: dict[str, int]
    seconds: dict[str, float]
    locks: dict[str, str] | None = None
    rewritten: tuple[str, ...] | None = None


class RoundTrip(NamedTuple):
    database: str
    steps: list[Step]
    findings: list[Finding]
    notes: list[str]  #: what could not be checked, and why


Snapshot = dict[str, tuple[tuple[str, ...], dict[Any, dict[str, Any]]]]


def roundtrip(target: Target = None, revision_range: str | None = None, *, rows: int = 20,
              report: bool = False, on_step: Callable[[int, int, str], None] | None = None) -> RoundTrip:
    """Round-trip each revision of ``revision_range`` (``FROM:TO``, or ``TO`` from base; default
    every revision) on ``target``, which must be empty; None: a temporary SQLite file.
    ``on_step(n, total, revision)`` before each revision (progress).

    :raises UsageError: a non-empty database, an unknown revision, a range going down,
        ``rows`` below 1.
    """
    import tempfile

    if rows < 1:
        raise UsageError(f"--rows must be at least 1, not {rows}")
    with contextlib.ExitStack() as stack:
        if target is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="roundtrip-"))
            target = f"sqlite:///{folder}/roundtrip.db"
        db = resolve(target)
        plan = _revisions(revision_range)  # a bad range is said before the database is looked at
        _refuse_non_empty(db)
        declared = generated.declared_enums()
        with generated.watch_declarations(declared):
            return _walk(db, plan, rows, report, on_step, declared)


def _revisions(revision_range: str | None) -> tuple[str | None, list[Any]]:
    start, _, end = (revision_range or "base:heads").rpartition(":")
    start, end = start or "base", end or "heads"
    for revision in (start, end):
        if revision not in ("base", "head", "heads"):
            graph.require_revision(revision)
    going_down = UsageError(f"{revision_range}: the range goes down; roundtrip walks up, oldest first "
                            "(FROM:TO with FROM before TO)")
    if end == "base" or (start in ("head", "heads") and end not in ("head", "heads")):
        raise going_down
    if start in ("head", "heads"):
        raise UsageError(f"{revision_range}: no revision between them (give FROM:TO, oldest first)")
    if start != "base" and end not in ("head", "heads"):
        first, last = graph.script(start).revision, graph.script(end).revision  # type: ignore[union-attr]
        if last != first and last in graph.ancestors((first,)):  # TO is before FROM
            raise going_down
    ends = graph.heads() if end in ("head", "heads") else (graph.script(end).revision,)  # type: ignore[union-attr]
    before = set() if start == "base" else graph.ancestors((graph.script(start).revision,))  # type: ignore[union-attr]
    wanted = graph.ancestors(ends) - before
    if not wanted:
        raise UsageError(f"{revision_range}: no revision between them (give FROM:TO, oldest first)")
    return (None if start == "base" else graph.script(start).revision,  # type: ignore[union-attr]
            [found for found in graph.history() if found.revision in wanted])


def _refuse_non_empty(db: Database) -> None:
    import sqlalchemy as sa

    if db.file_missing():
        return
    with connections.connect(db, will_write=False) as connection:
        names = sa.inspect(connection).get_table_names(schema=_schema(db))
    if names:
        raise UsageError(f"roundtrip fills and drops tables: {db.masked} holds {', '.join(sorted(names)[:5])}"
                         f"{'...' if len(names) > 5 else ''}; give it an empty database")


def _schema(db: Database) -> str | None:
    return db.schema if db.is_postgresql else None


def _walk(db: Database, plan: tuple[str | None, list[Any]], wanted: int, report: bool,
          on_step: Callable[[int, int, str], None] | None = None,
          declared: dict[tuple[str, str], list[str]] | None = None) -> RoundTrip:
    """Each revision in turn. A finding is that revision's: the walk goes on to the next
    (a real history has more than one), unless the database cannot get past it."""
    start, revisions = plan
    if start is not None:
        _move(db, "upgrade", start)
    steps, findings, notes = [], [], []
    number = 1
    for index, info in enumerate(revisions, start=1):
        if on_step is not None:
            on_step(index, len(revisions), info.revision)
        try:
            number, counts = _fill(db, wanted, number, declared or {})
        except MigrateError as exc:
            notes.append(f"{info.revision}: {exc}")
            counts = {}
        before = _snapshot(db)
        before_heads = _current(db)
        seconds: dict[str, float] = {}
        held: dict[str, str] = {}
        files = relfilenodes(db) if report and db.is_postgresql else None
        try:
            with locks_taken(db, held, report):
                seconds["upgrade"] = _move(db, "upgrade", info.revision)
        except MigrateError as exc:
            findings.append(_failed(db, info, exc, "upgrade"))
            steps.append(Step(info.revision, info.message, counts, seconds))
            if not _past_it_without_rows(db, info.revision, notes):
                break
            continue
        after = _snapshot(db)
        rewritten = None if files is None else tuple(sorted(t for t, n in relfilenodes(db).items() if t in files and files[t] != n))
        findings += _compare(before, after, info.revision, "upgrade", _declared(info.revision))
        down = info.down_revisions
        if not _only_it_goes_back(info.revision, down, before_heads):
            # A merge, or a parent another applied branch also grows from: going back to the
            # parent would take those down too.
            notes.append(f"{info.revision}: {'a merge' if len(down) > 1 else 'another branch grows from its parent'}"
                         "; its downgrade is not round-tripped")
        else:
            try:
                seconds["downgrade"] = _move(db, "downgrade", down[0] if down else "base")  # exactly before
                findings += _compare(before, _snapshot(db), info.revision, "downgrade", set(), whole=True)
                seconds["upgrade again"] = _move(db, "upgrade", info.revision)
            except MigrateError as exc:
                findings.append(_failed(db, info, exc, "upgrade again" if "downgrade" in seconds else "downgrade"))
                if info.revision not in _current(db) and not _past_it_without_rows(db, info.revision, notes):
                    steps.append(Step(info.revision, info.message, counts, seconds))
                    break
        steps.append(Step(info.revision, info.message, counts, seconds,
                          dict(held) if report and db.is_postgresql else None, rewritten))
    return RoundTrip(db.masked, steps, findings, notes)


def _past_it_without_rows(db: Database, revision: str, notes: list[str]) -> bool:
    """After a move that failed with rows present (rolled back: the database sits before
    ``revision``): empty every table and upgrade to it. True when that worked and the walk
    can go on; else a note says why it stops there."""
    import sqlalchemy as sa

    try:
        with connections.connect(db, will_write=True) as connection:
            for table in reversed(_tables(connection, db)):  # children first
                connection.execute(sa.delete(table))
            connection.commit()
        _move(db, "upgrade", revision)
    except Exception as exc:  # noqa: BLE001 - any failure here ends the walk, said in the note
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        notes.append(f"{revision}: the round-trip stops here: it cannot be applied even with its tables "
                     f"emptied ({first})")
        return False
    notes.append(f"{revision}: applied with its tables emptied, to go on with the revisions after it")
    return True


def _move(db: Database, direction: str, revision: str) -> float:
    started = time.perf_counter()
    runner.run(direction, db, revision, on_applied=None, lock_timeout=DEFAULT_LOCK_TIMEOUT,  # type: ignore[arg-type]
               statement_lock_timeout=None, on_wait=None, use_checkpoints=False)
    return time.perf_counter() - started


def _only_it_goes_back(revision: str, down: tuple[str, ...], before: tuple[str, ...]) -> bool:
    """A downgrade to its one parent reverts ``revision`` alone: nothing else applied grows
    from that parent (Alembic reverts every applied descendant of the destination)."""
    if len(down) > 1:
        return False
    applied = graph.ancestors(before) | {revision}
    if not down:
        return applied == {revision}
    return {found for found in applied if found != down[0] and down[0] in graph.ancestors((found,))} == {revision}


def _current(db: Database) -> tuple[str, ...]:
    if db.file_missing():
        return ()
    with connections.connect(db, will_write=False) as connection:
        return tuple(sorted(connections.read_current(connection)))


def _tables(connection: Connection, db: Database) -> list[Any]:
    import sqlalchemy as sa

    metadata = sa.MetaData()
    with warnings.catch_warnings():
        # Rows are all a round-trip compares: an expression index it cannot reflect is no
        # matter, and tables referring to each other (prefect's flow_run and flow_run_state)
        # are filled in an order that leaves the cycle's nullable keys empty. Said once per
        # table per step, these buried the progress lines.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index",
                                sa.exc.SAWarning)
        warnings.filterwarnings("ignore", "Cannot correctly sort tables", sa.exc.SAWarning)
        metadata.reflect(connection, schema=_schema(db))
        tables = [table for table in metadata.sorted_tables if table.name not in ledger.RUNNER_TABLES]
    generated.storable_types(connection, tables)
    return tables


def _fill(db: Database, wanted: int, number: int,
          declared: dict[tuple[str, str], list[str]]) -> tuple[int, dict[str, int]]:
    """Every table topped up to ``wanted`` rows, parents first; rows per table."""
    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError

    counts = {}
    with connections.connect(db, will_write=True) as connection:
        for table in _tables(connection, db):
            try:
                number = generated.fill(connection, table, wanted, number,
                                        generated.allowed_values(connection, table, declared))
                connection.commit()
            except DBAPIError as exc:
                connection.rollback()
                reason = str(getattr(exc, "orig", exc)).splitlines()[0]
                raise MigrateError(f"no rows could be generated for {table.name}: {reason}") from None
            counts[table.name] = connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
    return number, counts


def _snapshot(db: Database) -> Snapshot:
    import sqlalchemy as sa

    found: Snapshot = {}
    with connections.connect(db, will_write=False) as connection:
        for table in _tables(connection, db):
            columns = tuple(column.name for column in table.columns)
            key = [column.name for column in table.primary_key.columns] or list(columns)
            rows = {}
            for row in connection.execute(sa.select(table)).mappings():
                rows[tuple(_plain(row[name]) for name in key)] = {name: row[name] for name in columns}
            found[table.name] = (columns, rows)
    return found


def _declared(revision: str) -> set[str]:
    """``table.column`` the revision changes on purpose (its ``roundtrip_changes``)."""
    script = graph.script(revision)
    declared = getattr(getattr(script, "module", None), MARKER, None) or {}
    return set(declared)


def _compare(before: Snapshot, after: Snapshot, revision: str, direction: str, skip: set[str],
             *, whole: bool = False) -> list[Finding]:
    """What ``after`` did not keep of ``before``; ``whole``: every table and column must be
    back as it was (a downgrade), else only what both hold (an upgrade drops on purpose)."""
    findings = []
    for table, (columns, rows) in before.items():
        if table not in after:
            if whole and rows:
                findings.append(Finding(revision, table, None, direction, len(rows), "the table is gone"))
            continue
        later_columns, later = after[table]
        lost = [key for key in rows if key not in later]
        if lost:
            findings.append(Finding(revision, table, None, direction, len(lost),
                                    f"{len(lost)} of {len(rows)} rows lost, e.g. {_key(lost[0])}"))
        for column in columns:
            if f"{table}.{column}" in skip:
                continue
            if column not in later_columns:
                if whole and rows:
                    findings.append(Finding(revision, table, column, direction, len(rows), "the column is gone"))
                continue
            differ = [key for key in rows if key in later and not _same(rows[key][column], later[key][column])]
            if differ:
                first = differ[0]
                shown = (("***", "***") if settings.is_secret_parameter(column)
                         else (_short(rows[first][column]), _short(later[first][column])))
                findings.append(Finding(revision, table, column, direction, len(differ),
                                        f"{len(differ)} of {len(rows)} rows differ, e.g. {_key(first)}: "
                                        f"{shown[0]} -> {shown[1]}"))
        extra = [key for key in later if key not in rows]
        if whole and extra:
            findings.append(Finding(revision, table, None, direction, len(extra),
                                    f"{len(extra)} rows left behind, e.g. {_key(extra[0])}"))
    return findings


def _failed(db: Database, info: Any, exc: MigrateError, direction: str) -> Finding:
    """A move that fails with rows present: the column it names, or the one its SQL retypes."""
    text = str(exc)
    named = re.search(r"column '([^']+)'", text) or re.search(r'column "([^"]+)"', text)
    table, column = "?", named.group(1) if named else None
    if direction == "upgrade":
        from ..runtime.offline import render

        previous = info.down_revisions[0] if len(info.down_revisions) == 1 else None
        try:
            sql = render("upgrade", f"{previous}:{info.revision}" if previous else info.revision, db.url, db.schema,
                         use_checkpoints=False)
        except MigrateError:
            sql = ""
        retyped = re.search(r"ALTER TABLE (\S+) (?:ALTER COLUMN|MODIFY(?: COLUMN)?) [`\"]?(\w+)[`\"]?", sql)
        if retyped:
            table, column = retyped.group(1).strip('`"').rpartition(".")[2], column or retyped.group(2)
    return Finding(info.revision, table, column, direction, 0, f"fails with rows present: {text}")


def _same(left: Any, right: Any) -> bool:
    if left == right:
        return True
    numbers = (int, float)
    import decimal

    if isinstance(left, (*numbers, decimal.Decimal)) and isinstance(right, (*numbers, decimal.Decimal)):
        return float(left) == float(right)
    return _plain(left) == _plain(right)


def _plain(value: Any) -> Any:
    """A value as text, for keys and for values whose Python type a type change altered."""
    import datetime as dt

    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, sort_keys=True)
    return value


def _key(key: Any) -> str:
    return ", ".join(str(part) for part in key) if isinstance(key, tuple) else str(key)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
