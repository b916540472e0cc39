"""PostgreSQL: the DDL of one schema written from the catalogs, as a checkpoint form.

What ``pg_dump --schema-only`` would write for the schema the connection's search path
names, and its rows as ``COPY`` would (each value's text), but unqualified, so the form
lands in whichever schema (a tenant's) it is installed into: enum types, sequences with
their options and values, tables with columns, defaults, identity and generated columns,
constraints and indexes by their names, comments. The server renders every expression
and definition itself (``format_type``, ``pg_get_expr``, ``pg_get_constraintdef``,
``pg_get_indexdef``), with the schema in the search path so that they come unqualified.
Objects it does not write (views, functions, triggers, domains, partitions, inheritance,
row security, grants) are refused by name: the checkpoint would silently lack them.
"""

from __future__ import annotations

import re

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..identity import SCRATCH_PREFIX

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_NAMESPACE = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"

_UNSUPPORTED = f"""
SELECT CASE relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'p' THEN 'partitioned table'
                    WHEN 'f' THEN 'foreign table' ELSE 'composite type' END, relname
  FROM pg_class WHERE relnamespace = {_NAMESPACE} AND relkind IN ('v', 'm', 'p', 'f', 'c')
UNION ALL SELECT 'function', proname FROM pg_proc WHERE pronamespace = {_NAMESPACE}
UNION ALL SELECT 'trigger', t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = {_NAMESPACE} AND NOT t.tgisinternal
UNION ALL SELECT CASE typtype WHEN 'd' THEN 'domain' ELSE 'range type' END, typname FROM pg_type
  WHERE typnamespace = {_NAMESPACE} AND typtype IN ('d', 'r', 'm')
UNION ALL SELECT 'table inheriting', c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE c.relnamespace = {_NAMESPACE}
UNION ALL SELECT 'row security on', relname FROM pg_class WHERE relnamespace = {_NAMESPACE} AND relrowsecurity
UNION ALL SELECT 'privileges granted on', relname FROM pg_class
  WHERE relnamespace = {_NAMESPACE} AND relacl IS NOT NULL
"""

_ENUMS = f"""
SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE t.typnamespace = {_NAMESPACE} GROUP BY t.typname ORDER BY t.typname
"""

# Sequences: every one's options and value; ``owner`` is the column that owns it (a
# serial's), ``identity`` whether it is an identity column's (created by its table).
_SEQUENCES = f"""
SELECT c.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart,
       s.seqcache, s.seqcycle, d.deptype = 'i', t.relname, a.attname
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
  LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  LEFT JOIN pg_class t ON t.oid = d.refobjid
  LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE c.relnamespace = {_NAMESPACE} ORDER BY c.relname
"""

_TABLES = f"""
SELECT c.oid, c.relname, c.relpersistence = 'u', array_to_string(c.reloptions, ', '), obj_description(c.oid, 'pg_class')
  FROM pg_class c WHERE c.relnamespace = {_NAMESPACE} AND c.relkind = 'r' ORDER BY c.relname
"""

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
       a.attidentity::text, a.attgenerated::text,  -- "char": asyncpg returns bytes
       CASE WHEN a.attcollation <> t.typcollation THEN (SELECT collname FROM pg_collation WHERE oid = a.attcollation) END,
       col_description(a.attrelid, a.attnum)
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""

_CONSTRAINTS = f"""
SELECT r.relname, c.conname, c.contype::text, pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
 WHERE r.relnamespace = {_NAMESPACE} AND c.contype IN ('p', 'u', 'c', 'x', 'f')
 ORDER BY r.relname, c.contype = 'f', c.conname
"""

# Indexes other than those a constraint made (a foreign key's conindid is the index it
# references, not one of its own: only p, u and x own theirs).
_INDEXES = f"""
SELECT pg_get_indexdef(i.indexrelid), quote_ident(current_schema()), t.relname
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
 WHERE t.relnamespace = {_NAMESPACE}
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                   AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
 ORDER BY ic.relname
"""


#: ``(ARRAY[...])::text[]``: pg_get_constraintdef's text for ``varchar_col IN ('A', 'B')``,
#: which PostgreSQL parses back into another expression (the cast pushed into each element).
_CAST_ARRAY = re.compile(r"\(\(ARRAY\[((?:'(?:[^']|'')*'|[^\]'])*)\]\)::[a-z ]+\[\]\)")


_PROBE = f"{SCRATCH_PREFIX}check_probe"


def _reparsable_check(connection: Connection, table: str, definition: str) -> str:
    """A CHECK's text that PostgreSQL parses back into the expression it holds.

    ``pg_get_constraintdef`` does not round-trip every expression: an IN-list on a
    varchar column comes back as ``= ANY ((ARRAY['A'::character varying])::text[])``,
    which parses into ``ARRAY[('A'::character varying)::text]``, so a checkpoint
    installed from that text would not be ``pg_dump``-identical to the replay. Each
    candidate is tried on the table in a savepoint and kept when PostgreSQL describes the
    result exactly as it describes the original; the catalog's text when none does."""
    if "ARRAY[" not in definition:
        return definition
    for candidate in dict.fromkeys([definition, _CAST_ARRAY.sub(r"(ARRAY[\1])", definition)]):
        connection.exec_driver_sql(f"SAVEPOINT {_PROBE}")
        try:
            connection.exec_driver_sql(
                f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_PROBE} {candidate} NOT VALID")
            described = connection.exec_driver_sql(
                f"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = '{_PROBE}' "
                f"AND conrelid = {_literal(_quote(table))}::regclass").scalar()
        except Exception:  # noqa: BLE001 - a candidate that does not parse is no candidate
            described = None
        connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_PROBE}")
        if described is not None and described.removesuffix(" NOT VALID") == definition:
            return candidate
    return definition


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def capture(connection: Connection, runner_tables: Collection[str]) -> dict[str, Any]:
    """The form of the schema first in the connection's search path (a tenant's, or public).

    :raises CaptureError: an object it does not write, named.
    """
    from ..errors import CaptureError

    def rows(sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        from .connections import for_the_driver

        return list(connection.exec_driver_sql(*for_the_driver(connection, sql, params)).all())

    if not connection.in_transaction():
        connection.begin()  # the search path is set per transaction
    unsupported = rows(_UNSUPPORTED)
    if unsupported:
        kind, name = unsupported[0]
        raise CaptureError(f"{kind} {name}: a checkpoint cannot reproduce it")
    statements: list[str] = []
    after: list[str] = []
    for name, labels in rows(_ENUMS):
        statements.append(f"CREATE TYPE {_quote(name)} AS ENUM ({', '.join(_literal(label) for label in labels)})")
    identity_options: dict[tuple[str, str], str] = {}
    sequences = []
    for (name, type_, increment, low, high, start, cache, cycle, is_identity, table, column) in rows(_SEQUENCES):
        if table in runner_tables:
            continue
        options = (f"INCREMENT BY {increment} MINVALUE {low} MAXVALUE {high} START WITH {start} "
                   f"CACHE {cache}{' CYCLE' if cycle else ' NO CYCLE'}")
        if is_identity:  # its type is the column's
            identity_options[(table, column)] = f"SEQUENCE NAME {_quote(name)} {options}"
        else:
            statements.append(f"CREATE SEQUENCE {_quote(name)} AS {type_} {options}")
            if table is not None:
                after.append(f"ALTER SEQUENCE {_quote(name)} OWNED BY {_quote(table)}.{_quote(column)}")
        value, called = rows(f"SELECT last_value, is_called FROM {_quote(name)}")[0]
        sequences.append({"name": name, "value": value, "called": called})
    # Keys and checks inside each CREATE TABLE (one catalog pass, no ALTER per key);
    # foreign keys after the rows: inserted in any order, checked once.
    inline: dict[str, list[str]] = {}
    for table, name, kind, definition in rows(_CONSTRAINTS):
        if table in runner_tables:
            continue
        if kind == "c":
            definition = _reparsable_check(connection, table, definition)
        if kind == "f":
            after.append(f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} {definition}")
        else:
            inline.setdefault(table, []).append(f"CONSTRAINT {_quote(name)} {definition}")
    data = []
    for oid, table, unlogged, options, comment in rows(_TABLES):
        if table in runner_tables:
            continue
        columns, inserted, types, always = [], [], [], False
        for (column, type_, not_null, default, identity, generated, collation, column_comment) in rows(
            _COLUMNS, {"oid": oid}
        ):
            text = f"{_quote(column)} {type_}"
            if collation:
                text += f" COLLATE {_quote(collation)}"
            if generated == "s":
                text += f" GENERATED ALWAYS AS ({default}) STORED"
            elif default is not None:
                text += f" DEFAULT {default}"
            if identity:
                kind = "ALWAYS" if identity == "a" else "BY DEFAULT"
                always = always or identity == "a"
                text += f" GENERATED {kind} AS IDENTITY ({identity_options[(table, column)]})"
            if not_null:
                text += " NOT NULL"
            columns.append(text)
            if generated != "s":
                inserted.append(column)
                types.append(type_)
            if column_comment is not None:
                after.append(f"COMMENT ON COLUMN {_quote(table)}.{_quote(column)} IS {_literal(column_comment)}")
        parts = columns + inline.get(table, [])
        create = f"CREATE {'UNLOGGED ' if unlogged else ''}TABLE {_quote(table)} (\n    " + ",\n    ".join(parts) + "\n)"
        if options:
            create += f" WITH ({options})"
        statements.append(create)
        if comment is not None:
            after.append(f"COMMENT ON TABLE {_quote(table)} IS {_literal(comment)}")
        listed = ", ".join(f"{_quote(c)}::text" for c in inserted)
        values = sorted([list(row) for row in rows(f"SELECT {listed} FROM {_quote(table)}")],
                        key=lambda row: [(v is None, v or "") for v in row])
        if values:
            data.append({"table": table, "columns": inserted, "types": types, "values": values,
                         **({"identity_always": True} if always else {})})
    for definition, schema, table in rows(_INDEXES):
        if table in runner_tables:
            continue
        # pg_get_indexdef always qualifies the table: "... ON <schema>.<table> USING ...".
        statements.append(definition.replace(f" ON {schema}.", " ON ", 1).replace(f" ON ONLY {schema}.", " ON ONLY ", 1))
    return {"statements": statements, "rows": data, "after": after, "sequences": sequences}
