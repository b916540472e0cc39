"""Rows for a round-trip (:mod:`.roundtrip`): generated from the reflected schema, so every
table of every revision gets rows its columns accept.

Each value is a function of the row's number ``k``, unique across the run, so unique
constraints hold; every third string fills its column's whole declared length (a narrowing
type change meets a value that does not fit); nullable columns get a NULL now and then;
a foreign key takes a row of its parent, which is filled first (tables in dependency order);
an integer primary key counts from a million, clear of the ids a revision's own seed rows
spell out; an identity the database always generates is left to it. A table whose constraints (a CHECK, a
trigger) refuse what was generated is reported, not guessed at.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

#: Every NULLABLE-th row of a nullable column is NULL.
NULLABLE = 5
#: Generated integer primary keys start here.
KEYS_FROM = 1_000_000
EPOCH = dt.datetime(2001, 2, 3, 4, 5, 6)


def value(column: sa.Column[Any], k: int) -> Any:
    """A value ``column`` accepts, distinct for each ``k``."""
    import sqlalchemy as sa

    kind = column.type
    if isinstance(kind, sa.Boolean):
        return k % 2 == 0
    if isinstance(kind, sa.SmallInteger):
        return k % 32000
    if isinstance(kind, sa.Integer):  # BigInteger too
        return k
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        scale = kind.scale or 0
        room = (kind.precision or 18) - scale
        whole = k % (10 ** min(room, 9)) if room > 0 else 0
        return decimal.Decimal(whole) + decimal.Decimal(k % 10 ** scale) / 10**scale if scale else decimal.Decimal(whole)
    if isinstance(kind, sa.Float):
        return k + 0.5
    if isinstance(kind, sa.DateTime):
        moment = EPOCH + dt.timedelta(minutes=k)
        return moment.replace(tzinfo=dt.timezone.utc) if kind.timezone else moment
    if isinstance(kind, sa.Date):
        return (EPOCH + dt.timedelta(days=k)).date()
    if isinstance(kind, sa.Time):
        return dt.time(k % 24, k % 60, k % 60)
    if isinstance(kind, sa.Interval):
        return dt.timedelta(seconds=k)
    if isinstance(kind, sa.Enum) and kind.enums:
        return kind.enums[k % len(kind.enums)]
    if isinstance(kind, sa.JSON):
        return {"k": k, "column": column.name}
    if isinstance(kind, sa.Uuid):
        found = uuid.uuid5(uuid.NAMESPACE_OID, f"{column.table.name}.{column.name}.{k}")
        return found if kind.as_uuid else str(found)
    if isinstance(kind, sa.LargeBinary):
        return f"{column.name}-{k}".encode()
    if isinstance(kind, sa.String):  # Text, Unicode, VARCHAR, CHAR...
        return text(column.name, k, getattr(kind, "length", None))
    return text(column.name, k, None)  # a type this generator does not know: text, which most accept


def text(name: str, k: int, length: int | None) -> str:
    """``name-k``, padded to the whole declared length every third row; long for TEXT."""
    core = f"{name[:8]}-{k}"
    if length is None:
        return core + (" lorem ipsum" * 30 if k % 3 == 0 else "")
    if len(core) > length:
        core = str(k)[-length:]
    return core.ljust(length, "x") if k % 3 == 0 else core


def nullable(column: sa.Column[Any]) -> bool:
    return bool(column.nullable) and not column.primary_key


def fill(connection: Connection, table: sa.Table, wanted: int, start: int,
         allowed: dict[str, list[Any]] | None = None) -> int:
    """Top ``table`` up to ``wanted`` rows; returns the next free row number. ``allowed``:
    the only values a column may take (:func:`allowed_values`), used in turn.

    :raises sqlalchemy.exc.DBAPIError: the database refused the rows (a CHECK, a trigger).
    """
    import sqlalchemy as sa

    have = connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
    if have >= wanted:
        return start
    parents = _parent_keys(connection, table)
    # Keys to the same parent take different rows of it, one apart: a table referring to
    # another twice often forbids the same row in both (prefect's CHECK (parent <> reference)).
    shift, seen = {}, {}
    for name, keys in parents.items():
        shift[name] = seen.get(id(keys), 0)
        seen[id(keys)] = shift[name] + 1
    rows = []
    for k in range(start, start + wanted - have):
        row = {}
        for column in table.columns:
            if _left_to_the_database(column, table):
                continue
            if column.name in parents:
                keys = parents[column.name]
                row[column.name] = keys[(k + shift[column.name]) % len(keys)] if keys else None
            elif _own_key(column, table):
                # Far from the small ids a revision's seed rows spell out (INSERT ... VALUES (1, ...)).
                row[column.name] = KEYS_FROM + k
            elif nullable(column) and k % NULLABLE == 0:
                row[column.name] = None
            elif allowed and allowed.get(column.name):
                choices = allowed[column.name]
                row[column.name] = choices[k % len(choices)]
            else:
                row[column.name] = value(column, k)
        rows.append(row)
    connection.execute(table.insert(), rows)
    return start + len(rows)


def _left_to_the_database(column: sa.Column[Any], table: sa.Table) -> bool:
    """A computed column, or an identity the database always generates."""
    identity = getattr(column, "identity", None)
    return column.computed is not None or (identity is not None and identity.always)


def _own_key(column: sa.Column[Any], table: sa.Table) -> bool:
    import sqlalchemy as sa

    return (column.primary_key and len(table.primary_key.columns) == 1 and isinstance(column.type, sa.Integer)
            and not column.foreign_keys)


def _parent_keys(connection: Connection, table: sa.Table) -> dict[str, list[Any]]:
    """For each single-column foreign key, the values its parent holds."""
    import sqlalchemy as sa

    found, read = {}, {}
    for constraint in table.foreign_key_constraints:
        if len(constraint.elements) != 1:
            continue
        (element,) = constraint.elements
        parent = element.column
        where = (parent.table.schema, parent.table.name, parent.name)
        if where not in read:  # one list per parent column: keys to it are told apart by it
            read[where] = list(connection.scalars(sa.select(parent).order_by(parent)))
        found[element.parent.name] = read[where]
    return found


#: A value list in a CHECK: ``col IN ('a', 'b')`` (SQLite, MySQL) or PostgreSQL's ``= ANY (ARRAY['a', ...])``.
_LISTED = re.compile(r"\bIN\s*\(([^)]*)\)|ARRAY\[([^\]]*)\]", re.IGNORECASE)
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def allowed_values(connection: Connection, table: sa.Table,
                   declared: dict[tuple[str, str], list[str]] | None = None) -> dict[str, list[Any]]:
    """Column -> the values it may take: from a CHECK listing them (``state IN ('A', 'B')``,
    as an Enum's constraint or a hand-written one), else from the models' Enum for that
    column (``declared``: a non-native Enum is a plain VARCHAR in the database, and the
    ORM fails later reading any other string)."""
    import sqlalchemy as sa

    found: dict[str, list[Any]] = {}
    try:
        checks = sa.inspect(connection).get_check_constraints(table.name, schema=table.schema)
    except NotImplementedError:
        checks = []
    names = [column.name for column in table.columns]
    for check in checks:
        text = check.get("sqltext") or ""
        mentioned = [name for name in names if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text)]
        listed = _LISTED.search(text)
        if len(mentioned) == 1 and listed is not None:
            values = [v.replace("''", "'") for v in _LITERAL.findall(listed.group(1) or listed.group(2))]
            if values:
                found.setdefault(mentioned[0], values)
    for name in names:
        if name not in found and (table.name, name) in (declared or {}):
            found[name] = declared[(table.name, name)]  # type: ignore[index]
    return found


def declared_enums() -> dict[tuple[str, str], list[str]]:
    """(table, column) -> the values of each Enum column of the models; {} when the models
    cannot be imported (a scratch history without them). :func:`watch_declarations` adds
    those the revisions themselves declare."""
    import sqlalchemy as sa

    try:
        from ...models import metadata
    except Exception:  # noqa: BLE001 - the models are a help here, never a requirement
        return {}
    return {(table.name, column.name): list(column.type.enums)
            for table in metadata.tables.values() for column in table.columns
            if isinstance(column.type, sa.Enum) and column.type.enums}


@contextlib.contextmanager
def watch_declarations(declared: dict[tuple[str, str], list[str]]) -> Iterator[None]:
    """While revisions run: each Enum column a revision declares (``op.create_table``,
    ``op.add_column``, batch operations all attach a ``Column`` to a ``Table``) recorded in
    ``declared``, the newest declaration winning. A non-native Enum is a plain VARCHAR in
    the database, so this is where its values are known."""
    import sqlalchemy as sa
    from sqlalchemy import event

    def attached(column: Any, table: Any) -> None:
        if isinstance(table, sa.Table) and isinstance(column.type, sa.Enum) and column.type.enums:
            declared[(table.name, column.name)] = list(column.type.enums)

    event.listen(sa.Column, "after_parent_attach", attached)
    try:
        yield
    finally:
        event.remove(sa.Column, "after_parent_attach", attached)


def storable_types(connection: Connection, tables: list[sa.Table]) -> None:
    """Reflected types the database cannot bind, replaced by ones it can: SQLite before
    3.45 has no ``jsonb()``, which SQLAlchemy's JSONB binds through (it stores JSON text)."""
    import sqlite3

    import sqlalchemy as sa

    if connection.dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 45):
        return
    from sqlalchemy.dialects import sqlite

    jsonb = getattr(sqlite, "JSONB", None)
    if jsonb is None:
        return
    for table in tables:
        for column in table.columns:
            if isinstance(column.type, jsonb):
                column.type = sa.JSON()
