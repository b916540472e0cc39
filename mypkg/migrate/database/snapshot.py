"""A schema and its rows captured from a database, and installed into an empty one.

What a checkpoint holds for one dialect (its *form*): the DDL that builds the schema as
the database itself describes it, every row the tables hold, and the state of the
counters (sequences) that the next insert reads. The form comes from the database, not
from SQLAlchemy's reflection (which drops names, server defaults and sequences):

- SQLite: the statements ``sqlite_master`` keeps (the schema *is* that text), the rows,
  ``sqlite_sequence``;
- PostgreSQL: DDL written from the catalogs (:mod:`.pg_catalog`), with the names and
  defaults the replay gave, unqualified so that it lands in a tenant's schema;
- MySQL and MariaDB: ``SHOW CREATE TABLE`` of each table, the rows.

A form is JSON: rows are stored with their types tagged (bytes, decimals, dates), except
PostgreSQL's, stored as the server's text for each value and cast back on the way in
(what ``COPY`` does), so nothing is lost whatever the type.

Anything the capture cannot reproduce (views on PostgreSQL and MySQL, functions,
triggers, grants, partitions, virtual tables) is refused by name rather than left out.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from typing import TYPE_CHECKING, Any

from ..errors import CaptureError
from .ledger import RUNNER_TABLES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def dialect_key(connection: Connection) -> str:
    """``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``: MySQL's and MariaDB's
    ``SHOW CREATE TABLE`` differ, so a form is made and used on one of them only."""
    name = connection.dialect.name
    if name == "mysql" and getattr(connection.dialect, "is_mariadb", False):
        return "mariadb"
    return name


# --- values ---------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """A driver's value as JSON; types JSON lacks are tagged."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, set | frozenset):  # MySQL SET
        return {"set": sorted(value)}
    raise CaptureError(f"a checkpoint cannot store a value of type {type(value).__name__}")


def decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    (tag, raw), = value.items()
    if tag == "float":
        return float(raw)
    if tag == "bytes":
        return base64.b64decode(raw)
    if tag == "decimal":
        return decimal.Decimal(raw)
    if tag == "datetime":
        return dt.datetime.fromisoformat(raw)
    if tag == "date":
        return dt.date.fromisoformat(raw)
    if tag == "time":
        return dt.time.fromisoformat(raw)
    if tag == "timedelta":
        return dt.timedelta(days=raw[0], seconds=raw[1], microseconds=raw[2])
    if tag == "set":
        return ",".join(raw)
    raise ValueError(f"unknown value tag {tag!r}")


def _sorted_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """Rows in an order that depends on their values only (the same from every replay)."""
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))


# --- capture --------------------------------------------------------------------------


def capture(connection: Connection) -> dict[str, Any]:
    """The form of the database (a tenant's schema) ``connection`` is on; the runner's own
    tables left out.

    :raises CaptureError: an object a checkpoint cannot reproduce, named.
    """
    key = dialect_key(connection)
    if key == "sqlite":
        form = _capture_sqlite(connection)
    elif key == "postgresql":
        from .pg_catalog import capture as capture_postgresql

        form = capture_postgresql(connection, RUNNER_TABLES)
    else:
        form = _capture_mysql(connection)
    if connection.in_transaction():
        connection.commit()
    return form


def _capture_sqlite(connection: Connection) -> dict[str, Any]:
    statements, rows = [], []
    objects = connection.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
    ).all()
    for type_, name, table, sql in objects:
        if table in RUNNER_TABLES or name.startswith("sqlite_"):
            continue
        if sql.upper().startswith("CREATE VIRTUAL TABLE"):
            raise CaptureError(f"virtual table {name}: a checkpoint cannot reproduce it (its shadow tables)")
        statements.append(sql)
        if type_ == "table":
            rows.append(_table_rows(connection, name, _sqlite_columns(connection, name), '"'))
    sequences = []
    if connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first():
        for name, seq in connection.exec_driver_sql("SELECT name, seq FROM sqlite_sequence ORDER BY name"):
            if name not in RUNNER_TABLES:
                sequences.append({"name": name, "value": seq})
    return {"statements": statements, "rows": [r for r in rows if r["values"]], "after": [], "sequences": sequences}


def _sqlite_columns(connection: Connection, table: str) -> list[str]:
    quoted = table.replace('"', '""')
    # hidden 0: a stored column (2, 3: generated, computed by SQLite itself).
    return [row[1] for row in connection.exec_driver_sql(f'PRAGMA table_xinfo("{quoted}")') if row[6] == 0]


def _quote(name: str, mark: str) -> str:
    return mark + name.replace(mark, mark * 2) + mark


def _table_rows(connection: Connection, table: str, columns: list[str], mark: str) -> dict[str, Any]:
    listed = ", ".join(_quote(c, mark) for c in columns)
    result = connection.exec_driver_sql(f"SELECT {listed} FROM {_quote(table, mark)}").all()
    values = _sorted_rows([[encode(v) for v in row] for row in result])
    return {"table": table, "columns": columns, "values": values}


def _capture_mysql(connection: Connection) -> dict[str, Any]:
    found = connection.exec_driver_sql(
        "SELECT 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
        "UNION ALL SELECT 'routine', ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() "
        "UNION ALL SELECT 'event', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() "
        "UNION ALL SELECT LOWER(TABLE_TYPE), TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE <> 'BASE TABLE'"
    ).first()
    if found is not None:
        raise CaptureError(f"{found[0]} {found[1]}: a checkpoint cannot reproduce it")
    tables = [row[0] for row in connection.exec_driver_sql(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
    ) if row[0] not in RUNNER_TABLES]
    statements, rows = [], []
    for table in tables:
        statements.append(_without_implicit_indexes(
            connection.exec_driver_sql(f"SHOW CREATE TABLE {_quote(table, '`')}").one()[1]))
        columns = [row[0] for row in connection.exec_driver_sql(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND EXTRA NOT LIKE '%%GENERATED%%' AND EXTRA NOT LIKE '%%PERSISTENT%%' "
            "ORDER BY ORDINAL_POSITION", (table,))]
        found_rows = _table_rows(connection, table, columns, "`")
        if found_rows["values"]:
            rows.append(found_rows)
    return {"statements": statements, "rows": rows, "after": [], "sequences": []}


def _without_implicit_indexes(create: str) -> str:
    """``SHOW CREATE TABLE`` without the indexes InnoDB made itself for foreign keys (named
    after one, on its columns), the keys listed in the order those indexes were made.
    Declared, such an index would stay when a later revision's index covers the key,
    where the replay's implicit one is dropped; left out, each key makes it again, in
    the same order."""
    import re

    lines = create.split("\n")
    head, body, tail = lines[0], [line.rstrip(",") for line in lines[1:-1]], lines[-1]
    constraint = re.compile(r"\s+CONSTRAINT (`(?:[^`]|``)+`) FOREIGN KEY \(([^)]*)\)")
    key = re.compile(r"\s+KEY (`(?:[^`]|``)+`) \(([^)]*)\)$")
    foreign = {(m.group(1), m.group(2)): line for line in body if (m := constraint.match(line))}
    implicit = [(m.group(1), m.group(2)) for line in body if (m := key.match(line)) and (m.group(1), m.group(2)) in foreign]
    kept = [line for line in body if line not in foreign.values()
            and not ((m := key.match(line)) and (m.group(1), m.group(2)) in foreign)]
    ordered = [foreign[k] for k in implicit] + [line for k, line in foreign.items() if k not in implicit]
    return "\n".join([head, ",\n".join(kept + ordered), tail])


# --- install --------------------------------------------------------------------------


def install(connection: Connection, form: dict[str, Any]) -> None:
    """Build the form's schema and rows, in the connection's transaction (the caller
    commits). MySQL commits each DDL statement: :func:`created_tables` tells the caller
    what to drop if it fails part way."""
    key = dialect_key(connection)
    mark = "`" if key in ("mysql", "mariadb") else '"'
    if key == "sqlite":
        # Rows go in table by table; their references are checked at commit.
        connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    elif mark == "`":
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")  # as mysqldump's output does
    try:
        if key == "postgresql":
            # One round trip for all the DDL (psycopg sends a query without parameters as
            # is): a thousand tables are a thousand statements. asyncpg prepares every
            # statement, and a prepared statement holds one command: one at a time there.
            one_by_one = connection.dialect.paramstyle == "numeric_dollar"

            def run(statements: list[str]) -> None:
                for text in statements if one_by_one else [";\n".join(statements)] if statements else []:
                    connection.exec_driver_sql(text)

            run(form["statements"])
            for table in form["rows"]:
                _insert(connection, table, mark, key)
            run(form["after"] + [_setval(entry) for entry in form["sequences"]])
            return
        if key == "sqlite":  # in-process: the driver's own cursor, without SQLAlchemy's per-call work
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            for statement in form["statements"]:
                cursor.execute(statement)
            cursor.close()
        else:
            for statement in form["statements"]:
                connection.exec_driver_sql(statement)
        for table in form["rows"]:
            _insert(connection, table, mark, key)
        for statement in form["after"]:
            connection.exec_driver_sql(statement)
        _set_sequences(connection, form["sequences"], key)
    finally:
        if mark == "`":
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")


def _insert(connection: Connection, table: dict[str, Any], mark: str, key: str) -> None:
    import sqlalchemy as sa

    columns = table["columns"]
    names = ", ".join(_quote(c, mark) for c in columns)
    if key == "postgresql":  # the server's text of each value, cast back to the column's type
        values = ", ".join(f"CAST(:c{i} AS {type_})" for i, type_ in enumerate(table["types"]))
        overriding = " OVERRIDING SYSTEM VALUE" if table.get("identity_always") else ""
    else:
        values = ", ".join(f":c{i}" for i in range(len(columns)))
        overriding = ""
    statement = sa.text(f"INSERT INTO {_quote(table['table'], mark)} ({names}){overriding} VALUES ({values})")
    params = [{f"c{i}": decode(v) for i, v in enumerate(row)} for row in table["values"]]
    for start in range(0, len(params), 1000):
        connection.execute(statement, params[start:start + 1000])


def _set_sequences(connection: Connection, sequences: list[dict[str, Any]], key: str) -> None:
    """SQLite: the AUTOINCREMENT counters (``sqlite_sequence``)."""
    import sqlalchemy as sa

    for entry in sequences:
        connection.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :n"), {"n": entry["name"]})
        connection.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:n, :v)"),
                           {"n": entry["name"], "v": entry["value"]})


def _setval(entry: dict[str, Any]) -> str:
    """PostgreSQL: a sequence's value as the replay left it (the next ``nextval`` agrees)."""
    called = "true" if entry["called"] else "false"
    return f"SELECT setval({_literal(_quote(entry['name'], chr(34)), 'postgresql')}::regclass, {int(entry['value'])}, {called})"


def created_tables(form: dict[str, Any]) -> list[str]:
    """MySQL/MariaDB: the tables the form creates (to drop after a failure part way)."""
    import re

    found = []
    for statement in form["statements"]:
        match = re.match(r"CREATE TABLE `((?:[^`]|``)+)`", statement)
        if match:
            found.append(match.group(1).replace("``", "`"))
    return found


def render(form: dict[str, Any], key: str) -> str:
    """The form as a SQL script (offline SQL), values as literals."""
    mark = "`" if key in ("mysql", "mariadb") else '"'
    lines = []
    if key == "sqlite":
        lines.append("PRAGMA defer_foreign_keys = ON;")
    elif mark == "`":
        lines.append("SET FOREIGN_KEY_CHECKS = 0;")
    lines += [f"{statement};" for statement in form["statements"]]
    for table in form["rows"]:
        names = ", ".join(_quote(c, mark) for c in table["columns"])
        for row in table["values"]:
            if key == "postgresql":
                literals = [("NULL" if v is None else f"CAST({_literal(v, key)} AS {t})") for v, t in zip(row, table["types"])]
            else:
                literals = [_literal(decode(v), key) for v in row]
            overriding = " OVERRIDING SYSTEM VALUE" if table.get("identity_always") else ""
            lines.append(f"INSERT INTO {_quote(table['table'], mark)} ({names}){overriding} VALUES ({', '.join(literals)});")
    lines += [f"{statement};" for statement in form["after"]]
    for entry in form["sequences"]:
        if key == "sqlite":
            name = _literal(entry["name"], key)
            lines.append(f"DELETE FROM sqlite_sequence WHERE name = {name};")
            lines.append(f"INSERT INTO sqlite_sequence (name, seq) VALUES ({name}, {entry['value']});")
        else:
            lines.append(f"{_setval(entry)};")
    if mark == "`":
        lines.append("SET FOREIGN_KEY_CHECKS = 1;")
    return "\n".join(lines) + "\n"


def _literal(value: Any, key: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        return f"X'{value.hex()}'" if key != "postgresql" else f"'\\x{value.hex()}'"
    text = value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)
    if key in ("mysql", "mariadb"):
        text = text.replace("\\", "\\\\")
    return "'" + text.replace("'", "''") + "'"
