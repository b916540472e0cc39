"""Read-only answers without SQLAlchemy or Alembic: the path every deploy and replica takes.

``status``, ``current`` and a no-op ``upgrade`` run at every start, usually with nothing
to do. The full path imports SQLAlchemy and Alembic and executes every revision script
(over a second with a thousand revisions); the answer needs only the version table,
read with the driver alone (``sqlite3``, ``psycopg``), and the revision graph, read from
the manifest (:mod:`.manifest`), never by importing a script.

The fast path answers only when it is sure to answer exactly as the full path would
(a test compares them); anything unusual (a URL it does not parse the way SQLAlchemy
does, a revision it does not know, a history whose order it cannot replay, a database that does not exist
or cannot be read, no ledger yet) returns ``None`` and the full path takes over, with
its error messages. ``MYPKG_NO_FASTPATH=1`` turns it off.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple

from ..database.settings import URL_PATTERN
from ..errors import MigrateError
from ..identity import BACKFILLING, BACKGROUND, CHECKSUM_OUTCOMES, LEDGER_TABLE, NO_FASTPATH_VAR, VERSION_TABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from ..history.manifest import Manifest
    from ..results import Status

DISABLE_VAR = NO_FASTPATH_VAR
#: The ledger outcome of a data migration under way or stopped part way (:mod:`.backfill`).

_URL = URL_PATTERN
# Nothing SQLAlchemy would unquote or re-quote: then the text is rendered as it is.
_PLAIN = re.compile(r"^[\w.\-~ +/]*$", re.ASCII)


# collections' namedtuple, typed for checkers: typing costs a no-op upgrade 2 ms to import.
if TYPE_CHECKING:
    class DatabaseState(NamedTuple):
        masked_url: str
        current: tuple[str, ...]
        #: (revision, checksum, outcome) oldest first; None: no ledger table yet, or not read.
        ledger: list[tuple[str, str | None, str]] | None
        #: A data migration is under way or stopped part way (a ``backfilling`` ledger row),
        #: or a background one is not finished (``background``);
        #: read for status only (a no-op upgrade needs every revision applied, which rules one out).
        backfilling: bool = False
else:
    DatabaseState = namedtuple("DatabaseState", "masked_url current ledger backfilling", defaults=(False,))


def enabled() -> bool:
    return not os.environ.get(DISABLE_VAR)


def _sqlite_state(database: str, masked: str, with_ledger: bool) -> DatabaseState | None:
    import sqlite3

    from ..database.settings import busy_timeout

    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    try:
        with open(database, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                return None  # empty or not SQLite: the full path decides and explains
    except OSError:
        return None
    try:
        connection = read_only(database, busy_timeout())
    except sqlite3.Error:
        return None
    try:
        # Only the two it reads: a schema with a thousand tables (plugins) is not listed.
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)", (VERSION_TABLE, LEDGER_TABLE))}
        return _read(connection, masked, tables, with_ledger)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):  # waited the whole bound: not again
            from ..database.connections import LOCKED_HINT

            raise MigrateError(f"{masked}: {exc}: {LOCKED_HINT}; nothing was changed") from None
        return None
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def read_only(database: str, timeout: float) -> Any:
    """A read-only ``sqlite3`` connection to the file at ``database``, waiting up to ``timeout``
    for a writer's lock. A plain path (see _PLAIN): only the space needs escaping in a file: URI.

    :raises sqlite3.Error: it cannot be opened."""
    import sqlite3

    return sqlite3.connect(f"file:{database.replace(' ', '%20')}?mode=ro", uri=True, timeout=timeout)


def _postgresql_state(
    parts: dict[str, Any], query: dict[str, str], masked: str, with_ledger: bool, schema: str | None = None
) -> DatabaseState | None:
    from . import libpq

    if not libpq.installed("psycopg"):
        return None  # the full path names the package to install
    params = libpq_params(parts, query)
    try:
        connection: Any = libpq.Connection(params)
    except libpq.Unavailable:
        return _psycopg_state(params, masked, with_ledger, schema)
    except libpq.ConnectError as exc:  # in psycopg's words, as the full path would say it
        refuse(masked, str(exc))
    try:
        with connection:
            found = connection.execute(_tables_sql(schema))
            return _read(connection, masked, {row[0] for row in found}, with_ledger, in_one_value=True,
                         schema=schema)
    except libpq.Unavailable:
        return None


def libpq_params(parts: dict[str, Any], query: dict[str, str]) -> dict[str, str]:
    """A parsed URL's connection parameters as psycopg hands them to libpq."""
    import math

    from ..database.settings import connect_timeout

    params = {
        "host": parts["ipv4host"] or parts["ipv6host"],
        "port": parts["port"],
        "user": parts["username"],
        "password": parts["password"],
        "dbname": parts["database"],
        **{key: value for key, value in query.items() if key != "schema"},  # mypkg's own, not libpq's
    }
    if "connect_timeout" not in query:
        params["connect_timeout"] = str(max(2, math.ceil(connect_timeout())))  # as the full path
    return {k: v for k, v in params.items() if v}


def _tables_sql(schema: str | None) -> str:
    """Which of the runner's tables exist in the schema the full path would use: the
    tenant's, else the connection's current one."""
    where = "current_schema()" if schema is None else literal(schema)
    return ("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {where} AND c.relname IN ('{VERSION_TABLE}', '{LEDGER_TABLE}')")


def literal(text: str) -> str:
    """A PostgreSQL string constant holding ``text`` exactly (PQexec takes no parameters):
    an escape string, read the same whatever ``standard_conforming_strings`` says."""
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'



def refuse(masked: str, message: str) -> None:
    """The full path would fail the same way: say so now, in its words, rather than
    connect a second time (a dead server's timeout twice, a wrong password twice)."""
    first = (message.strip() or "connection failed").splitlines()[0]
    where = "cannot connect to " if "connect" in first.lower() else ""
    raise MigrateError(f"{where}{masked}: {first}") from None


def _psycopg_state(
    params: dict[str, str], masked: str, with_ledger: bool, schema: str | None = None
) -> DatabaseState | None:
    """The same reads through psycopg, where no libpq can be loaded by path."""
    import psycopg

    try:
        connection = psycopg.connect(**params, autocommit=True)
    except psycopg.OperationalError as exc:
        refuse(masked, str(exc) or type(exc).__name__)
    except psycopg.Error:
        return None
    try:
        with connection:
            found = connection.execute(_tables_sql(schema)).fetchall()
            return _read(connection, masked, {row[0] for row in found}, with_ledger, schema=schema)
    except psycopg.Error:
        return None


def _read(
    connection: Any, masked: str, tables: set[str], with_ledger: bool, *, in_one_value: bool = False,
    schema: str | None = None,
) -> DatabaseState:
    # A tenant's tables by their qualified names: no search path is set on this connection.
    version_table, ledger_table = (
        (VERSION_TABLE, LEDGER_TABLE) if schema is None
        else (f"{identifier(schema)}.{VERSION_TABLE}", f"{identifier(schema)}.{LEDGER_TABLE}")
    )
    current: tuple[str, ...] = ()
    if VERSION_TABLE in tables:
        current = tuple(row[0] for row in connection.execute(f"SELECT version_num FROM {version_table}"))
    ledger = None
    backfilling = False
    if with_ledger and LEDGER_TABLE in tables:
        if in_one_value:
            ledger = _ledger_in_one_value(connection, ledger_table)
        else:
            ledger = [
                (row[0], row[1], row[2])
                for row in connection.execute(
                    f"SELECT revision, checksum, outcome FROM {ledger_table} ORDER BY id"
                )
            ]
    elif LEDGER_TABLE in tables:  # status: the ledger itself is not needed, only whether a backfill is under way
        backfilling = bool(list(connection.execute(
            f"SELECT 1 FROM {ledger_table} WHERE outcome IN ('{BACKFILLING}', '{BACKGROUND}') LIMIT 1"
        )))
    return DatabaseState(masked, current, ledger, backfilling)


def _ledger_in_one_value(connection: Any, ledger_table: str = LEDGER_TABLE) -> list[tuple[str, str | None, str]]:
    """The ledger as one text value: a thousand rows read value by value through ctypes
    cost more than the query. Fields are split by the unit separator, rows by the record
    separator (neither is in a revision id, a checksum or an outcome); no checksum is ''."""
    [(text,)] = connection.execute(
        f"SELECT string_agg(concat_ws(chr(31), revision, coalesce(checksum, ''), outcome), chr(30) ORDER BY id) "
        f"FROM {ledger_table}"
    )
    rows = []
    for record in (text or "").split("\x1e") if text else ():
        revision, checksum, outcome = record.split("\x1f")
        rows.append((revision, checksum or None, outcome))
    return rows


if TYPE_CHECKING:
    class ParsedUrl(NamedTuple):
        dialect: str  #: "sqlite" or "postgresql"
        parts: dict[str, Any]
        query: dict[str, str]
        masked: str  #: exactly as SQLAlchemy renders it with the password hidden
        schema: str | None = None  #: a tenant's schema (the URL's ``schema=``)
else:
    ParsedUrl = namedtuple("ParsedUrl", "dialect parts query masked schema", defaults=(None,))


def parse(url: str) -> ParsedUrl | None:
    """Split a URL the way SQLAlchemy does; None for anything this module does not handle."""
    match = _URL.fullmatch(url)
    if match is None:
        return None
    parts = match.groupdict()
    name = parts["name"]
    if name in ("sqlite", "sqlite+pysqlite"):
        database = parts["database"] or ""
        if parts["query"] or parts["username"] or parts["ipv4host"] or not _PLAIN.match(database):
            return None
        return ParsedUrl("sqlite", parts, {}, f"{name}:///{database}")  # plain: nothing to quote
    if name not in ("postgresql", "postgresql+psycopg"):
        return None
    from urllib.parse import parse_qsl, quote, quote_plus

    if any(value and not _PLAIN.match(value) for value in (parts["username"], parts["database"])):
        return None
    if parts["password"] is not None and "%" in parts["password"]:
        return None
    pairs = parse_qsl(parts["query"] or "", keep_blank_values=True)
    query = dict(pairs)
    if len(query) != len(pairs) or not all(query.values()) or any("\x00" in value for value in query.values()):
        return None  # an empty value (schema=): the full path explains
    from ..database.settings import LIBPQ_INTEGERS

    if any(not query[k].strip().lstrip("-").isdigit() for k in LIBPQ_INTEGERS if k in query):
        return None  # connect_timeout=abc: likewise
    masked = "postgresql+psycopg://"
    if parts["username"] is not None:
        masked += quote(parts["username"], safe=" +")
        if parts["password"] is not None:
            masked += ":***"
        masked += "@"
    if parts["ipv6host"]:
        masked += f"[{parts['ipv6host']}]"
    elif parts["ipv4host"]:
        masked += parts["ipv4host"]
    if parts["port"]:
        if not parts["port"].isdigit() or not 0 < int(parts["port"]) < 65536:
            return None  # the full path explains
        masked += f":{int(parts['port'])}"
    if parts["database"] is not None:
        masked += "/" + quote(parts["database"], safe=" +/")
    if query:
        from ..database.settings import is_secret_parameter

        masked += "?" + "&".join(
            f"{quote_plus(k)}={'***' if is_secret_parameter(k) else quote_plus(query[k])}" for k in sorted(query)
        )
    schema = query.get("schema")
    if schema is not None and (not schema.strip() or schema != schema.strip() or len(schema.encode("utf-8")) > 63
                               or "\x00" in schema):
        return None  # the full path explains
    return ParsedUrl("postgresql", parts, query, masked, schema)


def read_state(url: str, *, with_ledger: bool = True) -> DatabaseState | None:
    """The version table (and the ledger), read with the driver alone; None if unsure."""
    parsed = parse(url)
    if parsed is None:
        return None
    if parsed.dialect == "sqlite":
        return _sqlite_state(parsed.parts["database"] or "", parsed.masked, with_ledger)
    return _postgresql_state(parsed.parts, parsed.query, parsed.masked, with_ledger, parsed.schema)


def status_from(state: DatabaseState, shipped: Manifest) -> Status | None:
    """The full path's Status, on any graph (merges, branches, labels, dependencies);
    None when the history's order is not one the manifest can replay exactly."""
    from ..results import RevisionInfo, Status

    if any(rev not in shipped for rev in state.current):
        return None
    ordered = shipped.ordered()
    if ordered is None:
        return None
    from ..history.phases import of_every

    applied_ids = set(shipped.ancestors(state.current))
    heads = set(shipped.heads)
    phase = of_every(shipped)
    everything = [
        RevisionInfo(rev.revision, rev.down_revisions, rev.message, rev.revision in heads,
                     shipped.owner.get(rev.revision), phase[rev.revision])
        for rev in ordered
    ]
    return Status(
        database=state.masked_url,
        current=state.current,
        heads=shipped.heads,
        applied=[rev for rev in everything if rev.revision in applied_ids],
        pending=[rev for rev in everything if rev.revision not in applied_ids],
    )


def status(url: str) -> Status | None:
    """What :func:`.commands.status` returns, or None when only the full path can tell."""
    from ..history.manifest import load

    state = read_state(url, with_ledger=False)
    if state is None or state.backfilling:
        return None  # an interrupted data migration: the full path tells its progress
    return status_from(state, load())


def nothing_to_upgrade(url: str) -> DatabaseState | None:
    """The database's state, if ``upgrade`` to head has nothing to do and nothing to refuse.

    The full path would also create a missing ledger and refuse on a checksum
    mismatch: in those cases this returns None and the full path runs.
    """
    from ..history.manifest import load

    state = read_state(url)
    return None if state is None else nothing_to_upgrade_in(state, load())


def nothing_to_upgrade_in(state: DatabaseState, shipped: Manifest) -> DatabaseState | None:
    """:func:`nothing_to_upgrade`, judged on a state read already (a fleet reads many at once).

    Judged on the graph alone, without the history's order (which only a listing needs: a
    thousand plugin revisions take milliseconds to order, at every start)."""
    if state.ledger is None or any(rev not in shipped for rev in state.current):
        return None
    applied = shipped.ancestors(state.current)
    # Every revision applied, heads reached through depends_on included (their version row
    # folded into the dependent's): Alembic's own judgement.
    if not set(state.current) <= set(shipped.heads) or len(applied) != len(shipped.by_id):
        return None
    recorded: dict[str, str | None] = {}
    for revision, checksum, outcome in state.ledger:
        if outcome in CHECKSUM_OUTCOMES:
            recorded[revision] = checksum
    if any(rev not in shipped for rev in recorded):
        return None
    for revision in applied:
        if recorded.get(revision) not in (None, shipped.by_id[revision].sha256):
            return None
    return state
