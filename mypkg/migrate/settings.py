"""Where the database is, resolved in one place: option, environment, config file, default."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is not imported on the fast path

from .errors import MigrateError, UsageError
from .identity import DATABASE_URL_VAR, DEFAULT_URL, PACKAGE

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: Default for ``--lock-timeout`` (seconds): long enough for a migrator to finish a
#: real migration, short enough that a stuck deploy fails instead of hanging forever.
DEFAULT_LOCK_TIMEOUT = 300.0
#: Default for ``--busy-timeout`` (seconds): SQLite waits this long for an application's
#: write, or a reader's transaction, to end before a migration's statement gives up.
DEFAULT_BUSY_TIMEOUT = 30.0

# Driver module -> (pip requirement, conda-forge package), for the "install it" message.
_DRIVER_PACKAGES: dict[str, tuple[str, str]] = {
    "psycopg": (f"'{PACKAGE}[postgresql]' (psycopg[binary])", "psycopg"),
    "psycopg2": ("psycopg2-binary", "psycopg2"),
    "pg8000": ("pg8000", "pg8000"),
    "pymysql": ("PyMySQL", "pymysql"),
    "mysqldb": ("mysqlclient", "mysqlclient"),
    "oracledb": ("oracledb", "oracledb"),
    "pyodbc": ("pyodbc", "pyodbc"),
}


def resolve_url_string(option: str | None = None, config_file_url: str | None = None) -> str:
    """The database URL as text, from the first of: option, ``$MYPKG_DATABASE_URL``,
    the config file's ``sqlalchemy.url``, the default ``sqlite:///mypkg.db``."""
    for candidate in (option, os.environ.get(DATABASE_URL_VAR), config_file_url):
        if candidate:
            return candidate
    return DEFAULT_URL


def mask(url: str | URL) -> str:
    """The URL with its password replaced by ``***``: the only form ever printed or logged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Unparseable: hide anything between "://user:" and "@" by hand.
        scheme, sep, rest = url.partition("://")
        creds, at, host = rest.rpartition("@")
        if sep and at and ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
        return url


def parse_url(text: str) -> URL:
    """Parse and validate a database URL.

    :raises UsageError: malformed URL, unknown dialect, async driver.
    :raises MigrateError: the dialect's driver is not installed (says what to install).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(text)
    except ArgumentError:
        raise UsageError(
            f"malformed database URL {mask(text)!r}: expected dialect[+driver]://..., "
            f"for example {DEFAULT_URL} or postgresql://user@host/dbname"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the one PostgreSQL driver mypkg ships an extra for.
        url = url.set(drivername="postgresql+psycopg")
    try:
        dialect_cls = url.get_dialect()
    except NoSuchModuleError:
        raise UsageError(
            f"unknown database dialect {url.drivername!r} in {mask(url)}: "
            "use sqlite:///FILE or postgresql://user@host/dbname"
        ) from None
    if getattr(dialect_cls, "is_async", False):
        raise UsageError(f"async driver {url.drivername!r} is not supported: use a sync driver")
    try:
        dialect_cls.import_dbapi()
    except ImportError as exc:
        module = (exc.name or dialect_cls.driver).split(".")[0]
        pip_name, conda_name = _DRIVER_PACKAGES.get(module, (module, module))
        raise MigrateError(
            f"the driver {module!r} for {url.drivername}:// is not installed: "
            f"pip install {pip_name}, or conda install -c conda-forge {conda_name}"
        ) from None
    return url
