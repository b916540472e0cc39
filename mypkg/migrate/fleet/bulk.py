"""Many schemas of one PostgreSQL database read in one query, not a connection each.

``fleet status`` and a no-op ``fleet upgrade`` over thousands of tenant schemas need each
schema's version table (and, for the upgrade, its ledger). A single statement reads them
all: each schema's own ``SELECT`` is run server-side by ``query_to_xml``, so the statement
stays small whatever the count. Each answer is then judged against the shipped graph
exactly as the fast path judges one database (:mod:`..fast.answers`). A schema this cannot
judge (an unknown revision, no ledger yet, a checksum that differs, a history only the
full path can order) is left to the per-target path, which explains or migrates it.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from typing import Any

from ..identity import LEDGER_TABLE, VERSION_TABLE
from .targets import Target

#: Schemas read per transaction: each read takes a lock on the table it reads, and a
#: transaction may hold only so many (``max_locks_per_transaction``, 64 per connection
#: by default, shared by the server: 10,000 at once is "out of shared memory").
CHUNK = 500

#: The ledger's rows of schema ``n``, as an XML forest; NULL without a ledger.
_LEDGER_XML = (
    f"CASE WHEN to_regclass(format('%I.{LEDGER_TABLE}', n.nspname)) IS NOT NULL THEN query_to_xml(format("
    f"'SELECT revision, checksum, outcome FROM %I.{LEDGER_TABLE} ORDER BY id', n.nspname), false, true, '')::text END"
)


def _read_sql(with_ledger: bool) -> str:
    """For every tenant schema among ``:names`` that has a version table: its versions and
    (``with_ledger``: what a no-op upgrade must check) its ledger, each as an XML forest."""
    return (
        "SELECT n.nspname, "
        f"query_to_xml(format('SELECT version_num FROM %I.{VERSION_TABLE}', n.nspname), false, true, '')::text, "
        f"{_LEDGER_XML if with_ledger else 'NULL'} "
        "FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
        f"WHERE c.relname = '{VERSION_TABLE}' AND c.relkind IN ('r', 'p') AND n.nspname = ANY(:names)"
    )


def status_outcome(state: Any, phase: str | None) -> str:
    """A target's ``fleet status`` outcome: at head; ``ready`` (``--phase pre``: past every
    pre-deploy revision, post-deploy ones pending); or behind."""
    if state.at_head:
        return "at head"
    return "ready" if phase == "pre" and state.ready_for(phase) else "behind"


def answer(action: str, revision: str, targets: Sequence[Target], make_row: Callable[..., Any],
           phase: str | None = None) -> dict[str, Any]:
    """Rows (by identity) for the PostgreSQL schema targets that share a database with at
    least one other and that this can answer: ``status``, or ``upgrade`` to head with
    nothing to do. The others are not in the result."""
    if action not in ("status", "upgrade") or (action == "upgrade" and revision not in ("head", "heads")):
        return {}
    groups: dict[Any, list[tuple[Target, Any]]] = {}
    for found in targets:
        db = _schema_target(found)
        if db is not None:
            groups.setdefault(db.url, []).append((found, db))
    rows: dict[str, Any] = {}
    for members in groups.values():
        if len(members) > 1:
            from ..database import bridge

            rows.update(bridge.call(members[0][1], _read_group, action, members, make_row, phase))
    return rows


def _schema_target(found: Target) -> Any:
    from ..database.target import resolve
    from ..errors import MigrateError

    if "schema=" not in found.url or not found.url.startswith("postgres"):
        return None
    try:
        db = resolve(found.url)
    except MigrateError:
        return None  # the per-target path says what is wrong
    return db if db.is_postgresql and db.schema is not None else None


def _forest(text: str | None) -> list[dict[str, str]]:
    """query_to_xml's rows (a forest of <row> elements) as dicts; NULL columns are absent."""
    if not text:
        return []
    return [{field.tag: field.text or "" for field in row} for row in ElementTree.fromstring(f"<r>{text}</r>")]


def _read_group(action: str, members: list[tuple[Target, Any]], make_row: Callable[..., Any],
                phase: str | None) -> dict[str, Any]:
    import sqlalchemy as sa

    from ..database import connections
    from ..errors import MigrateError
    from ..fast.answers import DatabaseState, nothing_to_upgrade_in, status_from
    from ..history.manifest import load

    started = time.perf_counter()
    first = members[0][1]
    try:
        with connections.connect(first._replace(schema=None), will_write=False) as connection:
            found = {}
            names = [db.schema for _, db in members]
            read = sa.text(_read_sql(with_ledger=action == "upgrade"))  # status needs the versions alone
            for start in range(0, len(names), CHUNK):
                found.update({name: (versions, ledger) for name, versions, ledger in connection.execute(
                    read, {"names": names[start:start + CHUNK]})})
                connection.rollback()  # its table locks go with it
    except MigrateError:
        return {}  # unreachable, or a schema it may not read: each target tells its own
    shipped = load()
    share = (time.perf_counter() - started) / len(members)
    rows = {}
    for target, db in members:
        versions, ledger = found.get(db.schema, (None, None))
        current = tuple(row["version_num"] for row in _forest(versions))
        history = None if ledger is None else [
            (row["revision"], row.get("checksum"), row["outcome"]) for row in _forest(ledger)]
        state = DatabaseState(target.identity, current, history)
        if action == "status":
            judged = status_from(state, shipped)
            outcome = None if judged is None else status_outcome(judged, phase)
        else:
            judged = nothing_to_upgrade_in(state, shipped)
            outcome = None if judged is None else "unchanged"
        if outcome is not None:
            rows[target.identity] = make_row(target.identity, current, current, outcome, share)
    return rows
