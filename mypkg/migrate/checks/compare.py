"""Schema comparison (Alembic's autogenerate compare), rendered one readable line each.

Used by ``check`` (the database against the models) and by ``stamp``'s safe baseline
(the database against the schema a revision builds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..database.ledger import include_name

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection

#: What every comparison compares: types yes; server defaults no (known false
#: positives across dialects).
OPTIONS: dict[str, Any] = {
    "compare_type": True,
    "compare_server_default": False,
    "include_name": include_name,
}


#: ``drift``'s words for autogenerate's operations, which say what to do to the database to
#: match the expected schema: what it lacks is missing, what it has more is extra.
DRIFT_WORDS = {
    "add_table": "missing table", "remove_table": "extra table", "add_column": "missing column",
    "remove_column": "extra column", "add_index": "missing index", "remove_index": "extra index",
    "add_constraint": "missing constraint", "remove_constraint": "extra constraint",
    "add_fk": "missing foreign key", "remove_fk": "extra foreign key",
}


def differences(connection: Connection, expected: sa.MetaData, *, against: str = "models") -> list[str]:
    """How the connected database differs from ``expected`` (``against`` names it: ``models``,
    or ``revision`` in drift's words); [] when it matches."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts=dict(OPTIONS))
    found = compare_metadata(context, expected)
    built = expected.info.get(INDEX_DEFINITIONS)
    changed: list[str] = []
    if built is not None and connection.dialect.name == "postgresql":
        here = index_definitions(connection)
        found = _without_index_mismatches(found, here, built)
        reported = {(diff[1].table.name, diff[1].name) for diff in found
                    if isinstance(diff, tuple) and diff[0] in ("add_index", "remove_index")}
        # What autogenerate cannot see: the same index, defined otherwise (its order, its expression).
        changed = [f"changed index {table}.{index}: database {here[table, index]}, {against} {built[table, index]}"
                   for table, index in sorted(set(here) & set(built))
                   if here[table, index] != built[table, index] and (table, index) not in reported
                   and table in expected.tables]
    if connection.in_transaction():
        connection.rollback()
    return [render(diff, against) for diff in found] + changed


#: Where a reflected schema keeps its PostgreSQL indexes' own definitions (``metadata.info``).
INDEX_DEFINITIONS = "index_definitions"


def index_definitions(connection: Connection) -> dict[tuple[str, str], str]:
    """PostgreSQL: (table, index) -> the index as the server defines it, its schema left out."""
    import re

    rows = connection.exec_driver_sql(
        "SELECT t.relname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
        "WHERE t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())").all()
    return {(table, index): re.sub(r' ON (ONLY )?("[^"]+"|[^ ."]+)\.', r" ON \1", definition)
            for table, index, definition in rows}


def _without_index_mismatches(found: list[Any], here: dict[tuple[str, str], str],
                              built: dict[tuple[str, str], str]) -> list[Any]:
    """Autogenerate's compare, less an index it reports both removed and added while the
    server defines it alike on both sides: SQLAlchemy's reflection drops the DESC of an
    expression (prefect's ``coalesce(...) DESC``) that Alembic's keeps."""
    def key(diff: Any) -> tuple[str, str] | None:
        if isinstance(diff, tuple) and diff[0] in ("add_index", "remove_index"):
            return diff[1].table.name, diff[1].name
        return None

    removed = {key(diff) for diff in found if key(diff) and diff[0] == "remove_index"}
    added = {key(diff) for diff in found if key(diff) and diff[0] == "add_index"}
    alike = {pair for pair in removed & added if pair in here and here[pair] == built.get(pair)}
    return [diff for diff in found if key(diff) not in alike]


def render(diff: Any, against: str = "models") -> str:
    """One line for one autogenerate difference."""
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(render(item, against) for item in diff)
    kind, *args = diff
    if kind.startswith("modify_"):
        _schema, table, column, _info, old, new = args
        return f"{kind} {table}.{column}: database {old!r}, {against} {new!r}"
    if against != "models":
        kind = DRIFT_WORDS.get(kind, kind)
        if len(args) == 3 and isinstance(args[1], str) and hasattr(args[2], "name"):  # (schema, table, column)
            return f"{kind} {args[1]}.{args[2].name}"
    names = []
    for arg in args:
        name = getattr(arg, "name", None)
        table = getattr(getattr(arg, "table", None), "name", None)
        if name is not None:
            names.append(f"{table}.{name}" if table and table != name else str(name))
        elif isinstance(arg, str):
            names.append(arg)
    return f"{kind} {' '.join(names)}".strip()
