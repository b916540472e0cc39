"""The database a command works on, resolved once at the entry of every command.

A caller names the database as a URL string, a SQLAlchemy ``URL``, an ``Engine``, a
``Connection`` or nothing (``$MYPKG_DATABASE_URL``, else the default SQLite file).
:func:`resolve` turns any of them into one :class:`Database` (the parsed URL, its
backend, the SQLite file if any and the masked form for messages) that every room of
the machinery takes as it is, never re-deriving a part of it.
"""

from __future__ import annotations

import os

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Union

from ..errors import UsageError
from . import settings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

Target = Union[str, "URL", "Engine", "Connection", None]


class Database(NamedTuple):
    url: URL
    #: The URL with every secret hidden: the only form ever printed or logged.
    masked: str
    #: SQLAlchemy's backend name: ``sqlite``, ``postgresql``, ``mysql``...
    backend: str
    #: The file behind a SQLite URL; None for memory databases and other backends.
    sqlite_path: Path | None
    #: The caller's own Engine or Connection, used instead of one made here.
    handed_in: Engine | Connection | None = None
    #: The tenant's schema (PostgreSQL) or database (MySQL, MariaDB: ``url`` names it
    #: already), from ``--schema`` or the URL's ``schema=`` parameter; None: the default.
    schema: str | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.backend == "postgresql"

    @property
    def is_mysql(self) -> bool:
        """MySQL or MariaDB: DDL commits as it runs, no transaction can undo it."""
        return self.backend in ("mysql", "mariadb")

    def file_missing(self) -> bool:
        """True for a SQLite file that is not there yet: reading it must not create it."""
        return self.handed_in is None and self.sqlite_path is not None and not self.sqlite_path.exists()


def with_schema(target: Target, schema: str | None) -> Target:
    """``target`` with a tenant's ``schema`` as its URL's ``schema=`` parameter, the one form
    a schema travels in (the API's ``schema=``, as ``--schema``).

    :raises UsageError: the URL names another schema, or ``target`` is an Engine or a
        Connection (which keeps its own search path).
    """
    if schema is None:
        return target
    if target is None or isinstance(target, str):
        return settings.with_schema(settings.resolve_url_string(target), schema)
    render = getattr(target, "render_as_string", None)
    if render is None:
        raise UsageError("schema= needs a URL: an Engine or Connection handed in keeps its own search path")
    return settings.with_schema(render(hide_password=False), schema)


def resolve(target: Target, *, need_driver: bool = True) -> Database:
    """The one :class:`Database` for ``target`` (``need_driver``: see :func:`.settings.parse_url`).

    :raises UsageError: malformed URL, unknown dialect, async driver.
    :raises MigrateError: the driver is not installed.
    """
    from sqlalchemy.engine import Connection, Engine

    if isinstance(target, Database):  # already resolved: commands call each other with it
        return target
    handed_in: Engine | Connection | None = None
    shown: str | URL
    if isinstance(target, Connection):
        url, handed_in = target.engine.url, target
        shown = url
    elif isinstance(target, Engine):
        url, handed_in = target.url, target
        shown = url
    elif target is None or isinstance(target, str):
        text = settings.resolve_url_string(target)
        url = settings.parse_url(text, need_driver=need_driver)
        # A SQLite URL rewritten into URI form (mode=ro...) is shown as the user wrote it.
        shown = text if url.get_backend_name() == "sqlite" and url.query else url
    else:
        url = shown = target
    url, schema = _tenant_schema(url, handed_in)
    return Database(url, settings.mask(shown), url.get_backend_name(), sqlite_path(url), handed_in, schema)


#: The URL query parameter naming a tenant's schema: mypkg's own, never passed to a driver.
SCHEMA_PARAMETER = "schema"
#: Longest name each server keeps whole (PostgreSQL truncates longer ones, silently:
#: two tenants would share a schema).
_LONGEST = {"postgresql": 63, "mysql": 64, "mariadb": 64}


def _tenant_schema(url: URL, handed_in: object) -> tuple[URL, str | None]:
    """Take the ``schema=`` parameter out of ``url`` (for MySQL, it becomes the database).

    :raises UsageError: given twice, empty, too long, with a NUL, or on a backend without
        schemas (SQLite: a file per tenant instead), or with an Engine handed in.
    """
    if SCHEMA_PARAMETER not in url.query:
        return url, None
    value = url.query[SCHEMA_PARAMETER]
    backend = url.get_backend_name()
    if not isinstance(value, str):
        raise UsageError(f"the URL names {SCHEMA_PARAMETER}= {len(value)} times: give one schema")
    if backend not in _LONGEST:
        raise UsageError(f"--schema is for PostgreSQL and MySQL/MariaDB; {backend} has no schemas "
                         "(a SQLite tenant is a file of its own: fleet --sqlite-glob)")
    if handed_in is not None:
        raise UsageError("--schema needs a URL: an Engine or Connection handed in keeps its own search path")
    longest = _LONGEST[backend]
    if not value or "\x00" in value or len(value.encode("utf-8")) > longest:
        raise UsageError(f"schema name {value!r}: give 1 to {longest} bytes, no NUL ({backend} would "
                         "truncate a longer one)")
    if value != value.strip():  # '   ' or ' tenant_1': a quoting slip, never a tenant's name
        raise UsageError(f"schema name {value!r}: blank, or spaces around it; give the tenant's schema name")
    url = url.difference_update_query([SCHEMA_PARAMETER])
    if backend != "postgresql":
        url = url.set(database=value)  # a MySQL schema is a database on the same server
    return url, value


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for memory databases and other dialects."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    # The file system's own spelling of the name (SQLite takes it as UTF-8): under a C locale
    # Python encodes paths as ASCII, with the other bytes kept as surrogates.
    return Path(os.fsdecode(database.encode("utf-8", "surrogateescape")))
