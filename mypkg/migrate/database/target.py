"""The database a command works on, resolved once at the entry of every command.

A caller names the database as a URL string, a SQLAlchemy ``URL``, an ``Engine``, a
``Connection`` or nothing (``$MYPKG_DATABASE_URL``, else the default SQLite file).
:func:`resolve` turns any of them into one :class:`Database` (the parsed URL, its
backend, the SQLite file if any and the masked form for messages) that every room of
the machinery takes as it is, never re-deriving a part of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Union

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
    return Database(url, settings.mask(shown), url.get_backend_name(), sqlite_path(url), handed_in)


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for memory databases and other dialects."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)
