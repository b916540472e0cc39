"""libpq through ctypes: the fast path's PostgreSQL reads without importing psycopg.

``import psycopg`` is most of a no-op ``upgrade`` on PostgreSQL (about 140 ms of 170).
The fast path only needs to connect, run two or three SELECTs and read text back, which
libpq itself does in a few milliseconds. This module loads the libpq psycopg would use
(the copy ``psycopg[binary]`` ships, else the environment's, as conda's psycopg links it,
else the system's, as psycopg's pure-Python build finds it), so TLS, authentication,
``.pgpass``, ``PG*`` variables and service files behave exactly as on the full path.

Standard library only. Anything unexpected (no libpq found, a symbol missing, a result
that is not rows of text) is :class:`Unavailable`, and the fast path steps aside.
"""

from __future__ import annotations

import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONNECTION_OK, CONNECTION_BAD = 0, 1
POLLING_FAILED, POLLING_READING, POLLING_WRITING, POLLING_OK = 0, 1, 2, 3
PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_FATAL_ERROR = 1, 2, 7
PG_DIAG_SQLSTATE = ord("C")


class Unavailable(Exception):
    """No usable libpq, or an answer this module does not read: use psycopg instead."""


class ConnectError(Exception):
    """The server refused or could not be reached; the message is libpq's first line."""


class Failed(Exception):
    """The server refused a statement: its message, and its SQLSTATE (``sqlstate``)."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def installed(package: str) -> Path | None:
    """Where ``package`` would be imported from, without importing it (nor importlib.util,
    a few milliseconds of every start): the first folder of that name on ``sys.path``."""
    for entry in sys.path:
        folder = Path(entry or ".", package)
        if (folder / "__init__.py").is_file():
            return folder
    return None


def _candidates() -> list[str]:
    found: list[str] = []
    package = installed("psycopg_binary")
    if package is not None:
        # Linux and Windows wheels keep it beside the package, macOS wheels inside it.
        for folder in (package.parent / "psycopg_binary.libs", package / ".dylibs"):
            found.extend(str(path) for path in sorted(folder.glob("libpq*"))
                         if ".so" in path.name or path.suffix in (".dylib", ".dll"))
    names = {"darwin": ["libpq.5.dylib"], "win32": ["libpq.dll"]}.get(sys.platform, ["libpq.so.5"])
    for name in names:
        for folder in (Path(sys.prefix) / "lib", Path(sys.prefix) / "Library" / "bin"):  # conda
            if (folder / name).exists():
                found.append(str(folder / name))
        found.append(name)  # the system's, by the loader's own search
    return found


_lib: Any = None


def load() -> Any:
    """The libpq library, with the functions used here typed.

    :raises Unavailable: none found, or too old to have them.
    """
    global _lib
    if _lib is not None:
        return _lib
    import ctypes

    for candidate in _candidates():
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        try:
            _declare(lib)
        except AttributeError:
            continue
        _lib = lib
        return lib
    raise Unavailable("no libpq")


def _declare(lib: Any) -> None:
    import ctypes

    pointer, text, number = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, result, arguments in (
        ("PQconnectStart", pointer, [text]),
        ("PQconnectPoll", number, [pointer]),
        ("PQsocket", number, [pointer]),
        ("PQstatus", number, [pointer]),
        ("PQerrorMessage", text, [pointer]),
        ("PQfinish", None, [pointer]),
        ("PQexec", pointer, [pointer, text]),
        ("PQresultStatus", number, [pointer]),
        ("PQresultErrorMessage", text, [pointer]),
        ("PQresultErrorField", text, [pointer, number]),
        ("PQntuples", number, [pointer]),
        ("PQnfields", number, [pointer]),
        ("PQgetisnull", number, [pointer, number, number]),
        ("PQgetvalue", text, [pointer, number, number]),
        ("PQclear", None, [pointer]),
    ):
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments


def conninfo(params: dict[str, str]) -> str:
    """``key=value`` pairs as libpq parses them (psycopg's ``make_conninfo`` writes the same)."""
    def quoted(value: str) -> str:
        if value and not any(c in value for c in " \t\n\r\f\v'\\"):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quoted(str(value))}" for key, value in params.items())


class Connection:
    """One libpq connection, closed by ``with``; rows come back as text.

    Connected as psycopg connects (its ``connect``: start, then poll until done, the
    timeout counted here, at least 2 s), so that a failure is told in psycopg's words:
    the full path would say the same.
    """

    def __init__(self, params: dict[str, str]) -> None:
        if "," in params.get("host", "") or "," in params.get("hostaddr", ""):
            raise Unavailable("several hosts: psycopg tries them one by one")  # and words it so
        self.lib = load()
        self.handle = self.lib.PQconnectStart(conninfo(params).encode())
        if not self.handle:
            raise Unavailable("out of memory")
        try:
            self._poll(_timeout(params.get("connect_timeout")))
        except BaseException:
            self.close()
            raise

    def _poll(self, timeout: float) -> None:
        import select
        import time

        if self.lib.PQstatus(self.handle) == CONNECTION_BAD:
            raise ConnectError(f"connection is bad: {self._message()}")
        deadline = time.monotonic() + timeout
        while True:
            status = self.lib.PQconnectPoll(self.handle)
            if status == POLLING_OK:
                return
            if status not in (POLLING_READING, POLLING_WRITING):
                raise ConnectError(f"connection failed: {self._message()}")
            remaining = deadline - time.monotonic()
            socket = self.lib.PQsocket(self.handle)
            waiting = ([socket], [], []) if status == POLLING_READING else ([], [socket], [])
            if remaining <= 0 or not any(select.select(*waiting, remaining)):
                raise ConnectError("connection timeout expired")

    def _message(self) -> str:
        return _decode(self.lib.PQerrorMessage(self.handle)).strip()

    def execute(self, sql: str, *, writes: bool = False) -> list[tuple[str | None, ...]]:
        """The rows of ``sql``'s last statement (several may be sent at once), as text.
        ``writes``: a statement without rows answers [], and a refusal is :class:`Failed`
        (a read that is refused is :class:`Unavailable`: the full path reads instead)."""
        result = self.lib.PQexec(self.handle, sql.encode())
        if not result:
            raise Unavailable(_decode(self.lib.PQerrorMessage(self.handle)))
        try:
            status = self.lib.PQresultStatus(result)
            if writes and status == PGRES_COMMAND_OK:
                return []
            if writes and status == PGRES_FATAL_ERROR:
                code = self.lib.PQresultErrorField(result, PG_DIAG_SQLSTATE)
                raise Failed(_decode(self.lib.PQresultErrorMessage(result)).strip(), code and _decode(code))
            if status != PGRES_TUPLES_OK:
                raise Unavailable(_decode(self.lib.PQresultErrorMessage(result)))
            fields = range(self.lib.PQnfields(result))
            return [
                tuple(None if self.lib.PQgetisnull(result, row, field) else
                      _decode(self.lib.PQgetvalue(result, row, field)) for field in fields)
                for row in range(self.lib.PQntuples(result))
            ]
        finally:
            self.lib.PQclear(result)

    def close(self) -> None:
        if self.handle:
            self.lib.PQfinish(self.handle)
            self.handle = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _timeout(value: str | None) -> float:
    """psycopg's reading of ``connect_timeout``: libpq's rules, at least 2 s, and its
    own default (130 s) where there is none or it is 0."""
    try:
        seconds = int(float(value)) if value is not None else 0
    except ValueError:
        raise Unavailable(f"connect_timeout {value!r}") from None
    return 130.0 if seconds <= 0 else max(2.0, seconds)


def _decode(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")

