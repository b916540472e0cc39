"""Where the database is, resolved in one place: option, environment, config file, default."""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # typing itself is not imported on the fast path

from ..errors import MigrateError, UsageError
from ..identity import (
    BUSY_TIMEOUT_VAR,
    CONNECT_TIMEOUT_VAR,
    DATABASE_URL_VAR,
    DEFAULT_EXTENSIONS_SCHEMA,
    DEFAULT_URL,
    EXTENSIONS_SCHEMA_VAR,
    LEASE_SECONDS_VAR,
    LOCK_MODE_VAR,
    MIGRATION_URL_VAR,
)

if TYPE_CHECKING:
    from typing import Any

    from sqlalchemy.engine import URL

# SQLAlchemy's own URL pattern (sqlalchemy/engine/url.py), so both paths agree on parts.
URL_PATTERN = re.compile(
    r"""
    (?P<name>[\w\+]+)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/\?]+)\] |
            (?P<ipv4host>[^/:\?]+)
        )?
        (?::(?P<port>[^/\?]*))?
    )?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)

#: Default for ``--lock-timeout`` (seconds): long enough for a migrator to finish a
#: real migration, short enough that a stuck deploy fails instead of hanging forever.
DEFAULT_LOCK_TIMEOUT = 300.0
#: Default for ``--busy-timeout`` (seconds): SQLite waits this long for an application's
#: write, or a reader's transaction, to end before a migration's statement gives up.
DEFAULT_BUSY_TIMEOUT = 30.0

# Driver module -> (pip requirement, conda-forge package), for the "install it" message. By
# their own names: the package's extras asked for from an index would be an unrelated namesake.
_DRIVER_PACKAGES: dict[str, tuple[str, str]] = {
    "psycopg": ("'psycopg[binary]' (the postgresql extra)", "psycopg"),
    "psycopg2": ("psycopg2-binary", "psycopg2"),
    "pg8000": ("pg8000", "pg8000"),
    "pymysql": ("PyMySQL (the mysql extra)", "pymysql"),
    "asyncpg": ("asyncpg", "asyncpg"),
    "greenlet": ("greenlet (SQLAlchemy's asyncio extra)", "greenlet"),
    "mysqldb": ("mysqlclient", "mysqlclient"),
    "oracledb": ("oracledb", "oracledb"),
    "pyodbc": ("pyodbc", "pyodbc"),
}


#: Default for ``--connect-timeout`` (seconds): a server that accepts and never answers
#: fails the command instead of hanging it.
DEFAULT_CONNECT_TIMEOUT = 10.0


def resolve_url_string(option: str | None = None, config_file_url: str | None = None) -> str:
    """The database URL as text, from the first of: option, ``$MYPKG_MIGRATION_URL``,
    ``$MYPKG_DATABASE_URL``, the config file's ``sqlalchemy.url``, the default
    ``sqlite:///mypkg.db``.

    :raises UsageError: the option or a variable is set but empty (a missing secret must
        not silently mean the default database).
    """
    if option is not None:
        if not option.strip():
            raise UsageError("--url is empty: give a database URL")
        return option
    for name in (MIGRATION_URL_VAR, DATABASE_URL_VAR):
        value = os.environ.get(name)
        if value is not None:
            if not value.strip():
                raise UsageError(f"${name} is set but empty (a missing secret?): set it to a database URL or unset it")
            return value
    return config_file_url or DEFAULT_URL


def connect_timeout() -> float:
    """Seconds to wait for a connection: ``$MYPKG_CONNECT_TIMEOUT`` (what ``--connect-timeout``
    sets), else :data:`DEFAULT_CONNECT_TIMEOUT`."""
    return _seconds_from(CONNECT_TIMEOUT_VAR, DEFAULT_CONNECT_TIMEOUT, zero_ok=False)


def busy_timeout() -> float:
    """SQLite: seconds every connection of this process waits for another's lock:
    ``$MYPKG_BUSY_TIMEOUT`` (what ``--busy-timeout`` sets), else :data:`DEFAULT_BUSY_TIMEOUT`.
    The fast path's connection takes it too, so the bound holds on every path."""
    return _seconds_from(BUSY_TIMEOUT_VAR, DEFAULT_BUSY_TIMEOUT, zero_ok=True)


def extensions_schema() -> str | None:
    """PostgreSQL tenants: the schema holding the database's extensions, put on each
    tenant's search path after the tenant's own, where a tenant's ``CREATE EXTENSION``
    goes (:mod:`.extensions`): ``$MYPKG_EXTENSIONS_SCHEMA`` (what ``--extensions-schema``
    sets), else ``extensions``; set but empty, None: the tenant's schema alone.

    :raises UsageError: longer than PostgreSQL's 63 bytes (it would be cut silently).
    """
    name = os.environ.get(EXTENSIONS_SCHEMA_VAR, DEFAULT_EXTENSIONS_SCHEMA)
    if len(name.encode()) > 63:
        raise UsageError(f"--extensions-schema (${EXTENSIONS_SCHEMA_VAR}) is longer than 63 bytes: "
                         "PostgreSQL would cut the name")
    return name or None


LOCK_MODES = ("auto", "advisory", "lease")
DEFAULT_LEASE_SECONDS = 30.0


def lock_mode() -> str:
    """Which migration lock a PostgreSQL migration takes: ``$MYPKG_LOCK`` (what ``--lock``
    sets): ``advisory`` (a session's advisory lock, refused through a transaction pooler),
    ``lease`` (a lease row, fenced in every revision: works through one), or ``auto``, the
    default: advisory, and the lease where the pooler shows itself as the lock is taken.

    :raises UsageError: another value.
    """
    mode = os.environ.get(LOCK_MODE_VAR, "auto")
    if mode not in LOCK_MODES:
        raise UsageError(f"${LOCK_MODE_VAR} must be one of {', '.join(LOCK_MODES)}, not {mode!r}")
    return mode


def lease_seconds() -> float:
    """How long a lease lasts unrenewed: ``$MYPKG_LEASE`` (what ``--lease`` sets), else
    :data:`DEFAULT_LEASE_SECONDS`: how long a killed migrator's lease blocks the next one."""
    return _seconds_from(LEASE_SECONDS_VAR, DEFAULT_LEASE_SECONDS, zero_ok=False)


def _seconds_from(variable: str, default: float, *, zero_ok: bool) -> float:
    """:raises UsageError: the variable is set to anything but a finite number of seconds
    (more than zero, or zero or more with ``zero_ok``)."""
    import math

    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = "a number of seconds, zero or more" if zero_ok else "a positive number of seconds"
        raise UsageError(f"${variable} must be {kind}, not {text!r}")
    return value


#: PostgreSQL's lock_timeout is whole milliseconds in an int: 0 means no limit at all.
LOCK_TIMEOUT_RANGE = (0.001, 2_147_483.647)


def statement_lock_timeout_ms(seconds: float) -> int:
    """``--statement-lock-timeout`` as PostgreSQL's ``lock_timeout`` (whole ms, never 0).

    :raises UsageError: below a millisecond (it would read as no limit) or above the
        server's maximum (about 24.8 days), or not a finite number.
    """
    import math

    low, high = LOCK_TIMEOUT_RANGE
    if not (isinstance(seconds, int | float) and math.isfinite(seconds)) or not low <= seconds <= high:
        raise UsageError(
            f"--statement-lock-timeout must be between {low:g} and {high:.3f} seconds, not {seconds!r} "
            "(PostgreSQL reads less than a millisecond as no limit at all)"
        )
    return math.ceil(round(seconds * 1000, 6))


#: Query parameters whose values are secrets are masked wherever a URL is shown. Their
#: names are open-ended (``password``, ``sslpassword``, ``private_key``, ``aws_access_key_id``,
#: ``auth``, ``token``...), so a name is secret by what it says: anything naming a password,
#: a secret, a key, a token, a credential or auth. Masking a harmless value costs nothing.
_SECRET_WORDS = ("pass", "pwd", "secret", "key", "token", "credential", "auth")


def is_secret_parameter(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def mask(url: str | URL) -> str:
    """The URL with its password, and every secret query parameter, replaced by ``***``:
    the only form ever printed or logged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, str):
        url = displayable(url)
        if url.startswith("sqlite"):
            return mask_text(url)  # shown as written: SQLAlchemy would re-quote file: URIs
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return mask_text(url)
    if url.database:
        url = url.set(database=displayable(url.database))
    hidden = {key: "MASKEDSECRET" for key in url.query if is_secret_parameter(key)}
    if hidden:
        url = url.update_query_dict(hidden)
    return url.render_as_string(hide_password=True).replace("MASKEDSECRET", "***")


def displayable(text: str) -> str:
    """``text`` as a person reads it. Under a C locale, Python keeps a path's non-ASCII
    bytes as lone surrogates, which print and quote nowhere: shown as the UTF-8 they are."""
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte: escaped as it is
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def mask_text(url: str) -> str:
    """Without SQLAlchemy (a SQLite URL, an unparseable one, the fast path's log lines): hide anything between "://user:" and "@", and secret query values."""
    import re

    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if sep and at and ":" in creds:
        url = f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return re.sub(
        r"([?&])([^=&]+)=([^&]*)",
        lambda m: f"{m.group(1)}{m.group(2)}={'***' if is_secret_parameter(m.group(2)) else m.group(3)}",
        url,
    )


def parse_url(text: str, *, need_driver: bool = True) -> URL:
    """Parse and validate a database URL.

    :param need_driver: False for offline SQL and lint, which only render: Alembic's
        offline mode needs the dialect, not the DBAPI driver.
    :raises UsageError: malformed URL, unknown dialect, async driver.
    :raises MigrateError: the dialect's driver is not installed (says what to install).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if "\x00" in text:  # the OS cuts a path at it: SQLite would open another file than named
        raise UsageError(f"malformed database URL {mask(text)!r}: it holds a NUL character")
    try:
        url = make_url(text)
    except ArgumentError:
        raise UsageError(
            f"malformed database URL {mask(text)!r}: expected dialect[+driver]://..., "
            f"for example {DEFAULT_URL} or postgresql://user@host/dbname"
        ) from None
    except ValueError:  # the port, which SQLAlchemy converts to an int
        raise UsageError(f"malformed database URL {mask(text)!r}: the port must be a number") from None
    if url.port is not None and not 0 < url.port < 65536:
        raise UsageError(f"malformed database URL {mask(text)!r}: port {url.port} is out of range")
    if re.search(r"[?&]schema=(?:&|$)", text):  # SQLAlchemy drops an empty parameter: not "no schema"
        raise UsageError(f"malformed database URL {mask(text)!r}: schema= is empty (give the tenant's "
                         "schema, or leave the parameter out for the default)")
    if url.get_backend_name() == "sqlite" and (url.host or url.username or url.password or url.port):
        # sqlite://app.db (two slashes) names a host, which SQLite has not: SQLAlchemy's
        # complaint is five lines; say it in one, with the form that was meant.
        raise UsageError(
            f"malformed SQLite URL {mask(text)!r}: a file needs three slashes and no host or "
            "user (sqlite:///relative/app.db, sqlite:////absolute/app.db)"
        )
    if url.get_backend_name() == "sqlite" and url.query and not (url.database or "").startswith("file:"):
        # SQLite's own URI parameters (mode=ro, cache, immutable) work only in URI form.
        url = url.set(database=f"file:{url.database}").update_query_dict({"uri": "true"})
    if url.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the one PostgreSQL driver mypkg ships an extra for.
        url = url.set(drivername="postgresql+psycopg")
    try:
        dialect_cls = url.get_dialect()
    except NoSuchModuleError:
        raise UsageError(
            f"unknown database dialect {url.drivername!r} in {mask(url)}: "
            "use sqlite:///FILE, postgresql://user@host/dbname or mysql+pymysql://user@host/dbname"
        ) from None
    if getattr(dialect_cls, "is_async", False) and url.get_driver_name() not in ASYNC_DRIVERS:
        raise UsageError(f"async driver {url.drivername!r} is not supported: use postgresql+asyncpg:// "
                         "or a sync driver")
    _check_driver_parameters(url, dialect_cls, text)
    if not need_driver:
        return url
    try:
        dialect_cls.import_dbapi()
        if getattr(dialect_cls, "is_async", False):
            import greenlet  # noqa: F401 - SQLAlchemy's bridge from sync code to the driver's coroutines
    except ImportError as exc:
        module = (exc.name or dialect_cls.driver).split(".")[0]
        pip_name, conda_name = _DRIVER_PACKAGES.get(module.lower(), (module, module))
        raise MigrateError(
            f"the driver {module!r} for {url.drivername}:// is not installed: "
            f"pip install {pip_name}, or conda install -c conda-forge {conda_name}"
        ) from None
    return url


#: Async drivers whose URLs work (through :mod:`.bridge`): an asyncio application's own URL.
ASYNC_DRIVERS = ("asyncpg",)


#: libpq's parameters that must be whole numbers (libpq refuses anything else on connecting).
LIBPQ_INTEGERS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                   "tcp_user_timeout")


def _check_driver_parameters(url: URL, dialect_cls: Any, text: str) -> None:
    """A parameter SQLAlchemy converts for the driver (SQLite's ``timeout=``, MySQL's
    ``connect_timeout=``) holding what it cannot convert is the URL's fault: say which, here,
    rather than a ValueError when the first connection is made.

    :raises UsageError: naming the parameter (a secret's value masked).
    """
    if url.get_backend_name() == "postgresql":  # libpq reads these itself, at the first connection
        for name in LIBPQ_INTEGERS:
            value = url.query.get(name)
            if isinstance(value, str) and not re.fullmatch(r"\s*-?\d+\s*", value):
                raise UsageError(f"malformed database URL {mask(text)!r}: {name}={value} is not a value "
                                 "the postgresql driver takes (a whole number)")
    dialect = dialect_cls()
    try:
        dialect.create_connect_args(url)
        return
    except (ValueError, TypeError):
        pass
    import warnings

    for name, value in url.query.items():
        try:
            with warnings.catch_warnings():  # alone, SQLite's URI parameters are warned about
                warnings.simplefilter("ignore")
                dialect.create_connect_args(url.set(query={name: value}))
        except (ValueError, TypeError):
            shown = "***" if is_secret_parameter(name) else value
            raise UsageError(f"malformed database URL {mask(text)!r}: {name}={shown} is not a value "
                             f"the {url.get_backend_name()} driver takes") from None
    raise UsageError(f"malformed database URL {mask(text)!r}: its parameters are not values the driver takes")


def with_schema(text: str, schema: str | None) -> str:
    """``text`` with ``--schema`` added as the URL's ``schema=`` parameter, the one form a
    tenant's schema travels in (the API, a fleet's targets file, ``$MYPKG_DATABASE_URL``).

    :raises UsageError: the URL names another schema already, or is malformed.
    """
    if schema is None:
        return text
    if not schema.strip():
        raise UsageError(f"--schema is {'blank' if schema else 'empty'}: give 1 to 63 bytes (64 on MySQL), "
                         "or leave it out for the default")
    from urllib.parse import parse_qs, quote

    match = URL_PATTERN.fullmatch(text)
    if match is not None:  # read as SQLAlchemy reads it, without importing it (the fast path)
        given = parse_qs(match["query"] or "", keep_blank_values=True).get("schema")
        named = None if not given else given[0] if len(given) == 1 else tuple(given)  # as URL.query
    else:
        named = parse_url(text, need_driver=False).query.get("schema")
    if named is not None and named != schema:
        raise UsageError(f"--schema {schema!r} and the URL's schema={named!r} differ: give one")
    if named is not None:
        return text
    return f"{text}{'&' if '?' in text else '?'}schema={quote(schema, safe='')}"
