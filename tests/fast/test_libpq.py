"""The fast path's PostgreSQL reads through libpq (ctypes), without psycopg.

They must connect exactly as psycopg does (same libpq, same parameters) and answer
exactly as the psycopg reads they replace; where libpq cannot be loaded, psycopg answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

import mypkg
from mypkg.migrate.fast import libpq
from tests.servers.postgresql import PostgresServer


def params_for(server: PostgresServer, **extra: str) -> dict[str, str]:
    return {"host": str(server.socket_dir), "user": server.user, "dbname": "postgres", **extra}


@pytest.mark.parametrize("name", ["plain", "with space", "it's", "back\\slash", ""])
def test_parameters_reach_the_server_as_given(pg_server: PostgresServer, name: str) -> None:
    with libpq.Connection(params_for(pg_server, application_name=name)) as connection:
        assert connection.execute("SELECT current_setting('application_name')") == [(name,)]


def test_rows_nulls_and_text_come_back_as_psycopg_reads_them(pg_server: PostgresServer) -> None:
    sql = "SELECT * FROM (VALUES ('a', NULL::text, 'é'), ('b', 'x', '')) AS v(k, n, t) ORDER BY k"
    with libpq.Connection(params_for(pg_server)) as connection:
        ours = connection.execute(sql)
    import psycopg

    with psycopg.connect(**params_for(pg_server)) as connection:
        assert ours == [tuple(row) for row in connection.execute(sql).fetchall()]


def test_a_long_lived_process_reading_many_times_leaves_no_session_open(pg_server: PostgresServer,
                                                                        postgresql_url: str) -> None:
    """A fleet's worker answers target after target through the fast path: each read's
    session ends with it (a leak would hold a server connection per target until the
    worker exits, and a fleet of hundreds would run the server out of connections)."""
    import time

    import psycopg

    from mypkg.migrate.fast import answers

    mypkg.upgrade(postgresql_url)
    for _ in range(5):
        assert answers.status(postgresql_url).at_head
    database = postgresql_url.split("?")[0].rsplit("/", 1)[-1]
    deadline = time.monotonic() + 30
    with psycopg.connect(**params_for(pg_server), autocommit=True) as watcher:
        while open_sessions := watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"{open_sessions} session(s) still open"
            time.sleep(0.05)


def test_a_failed_statement_is_unavailable_not_an_answer(pg_server: PostgresServer) -> None:
    with libpq.Connection(params_for(pg_server)) as connection, pytest.raises(libpq.Unavailable):
        connection.execute("SELECT * FROM no_such_table")


def test_writes_answer_nothing_or_the_servers_refusal_and_reads_only_rows(pg_server: PostgresServer) -> None:
    """What the fast install sends: a statement without rows answers [] as a write, a refused
    one is Failed with its SQLSTATE; a read that returns no rows is Unavailable (never an
    empty answer), and a write that returns rows gives them."""
    with libpq.Connection(params_for(pg_server)) as connection:
        assert connection.execute("SET application_name = 'fast'", writes=True) == []
        assert connection.execute("SELECT 1", writes=True) == [("1",)]
        with pytest.raises(libpq.Unavailable):
            connection.execute("SET application_name = 'fast'")
        with pytest.raises(libpq.Failed) as refused:
            connection.execute("CREATE TABLE pg_class_again (id int); CREATE TABLE pg_class_again (id int)",
                               writes=True)
        assert refused.value.sqlstate == "42P07" and "already exists" in str(refused.value)


def test_a_refused_connection_says_what_libpq_says(pg_server: PostgresServer) -> None:
    with pytest.raises(libpq.ConnectError, match="does not exist"):
        libpq.Connection(params_for(pg_server, dbname="no_such_database"))


FALLBACK = """
import json, sys
from mypkg.migrate import cli
from mypkg.migrate.fast import libpq
if sys.argv[2] == "no-libpq":
    libpq._candidates = lambda: []  # a machine without a libpq to load by path
code = cli.main(["--json", "--url", sys.argv[1], "status"])
print(json.dumps({"code": code, "psycopg": "psycopg" in sys.modules}))
"""


def test_without_a_loadable_libpq_psycopg_answers_the_same(postgresql_url: str) -> None:
    mypkg.upgrade(postgresql_url)
    answers = {}
    for mode in ("libpq", "no-libpq"):
        result = subprocess.run([sys.executable, "-c", FALLBACK, postgresql_url, mode],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        *status, last = result.stdout.strip().splitlines()
        answers[mode] = (json.loads("\n".join(status)), json.loads(last))
    (with_libpq, how), (without, fallback) = answers["libpq"], answers["no-libpq"]
    assert with_libpq == without and with_libpq["at_head"]
    assert how == {"code": 0, "psycopg": False}
    assert fallback == {"code": 0, "psycopg": True}


@pytest.mark.parametrize("where", ["no database", "no server"])
def test_a_refused_fast_path_connection_fails_as_the_full_path_does(
    pg_server: PostgresServer, where: str, tmp_path: Path
) -> None:
    # libpq's message for a socket with no server has a second line (a hint): the first is told.
    socket = tmp_path if where == "no server" else pg_server.socket_dir
    url = f"postgresql://{pg_server.user}@/no_such_database?host={quote(str(socket))}"
    lines = {}
    for fast in ("", "1"):
        result = subprocess.run([sys.executable, "-m", "mypkg", "--url", url, "status"], capture_output=True,
                                text=True, timeout=60, env={**__import__("os").environ, "MYPKG_NO_FASTPATH": fast})
        assert result.returncode == 1
        lines[fast] = result.stderr.strip()
    assert lines[""] == lines["1"]
    assert len(lines[""].splitlines()) == 1
    expected = "No such file or directory" if where == "no server" else 'database "no_such_database" does not exist'
    assert expected in lines[""]


PRIVILEGES = """
import sys
from mypkg.migrate import cli
from mypkg.migrate.fast import libpq
if sys.argv[2] == "no-libpq":
    libpq._candidates = lambda: []
sys.exit(cli.main(["--url", sys.argv[1], "status"]))
"""


def test_a_read_the_fast_path_may_not_make_leaves_the_answer_to_the_full_path(
    pg_server: PostgresServer, postgresql_url: str
) -> None:
    """A role that may connect but not read the version table: neither libpq nor psycopg
    answers on the fast path; the full path's refusal is the one told, the same each way."""
    import psycopg

    mypkg.upgrade(postgresql_url)
    database = postgresql_url.split("@/", 1)[1].split("?", 1)[0]
    with psycopg.connect(host=str(pg_server.socket_dir), user=pg_server.user, dbname=database,
                         autocommit=True) as connection:
        connection.execute("DROP ROLE IF EXISTS outsider")
        connection.execute("CREATE ROLE outsider LOGIN")
    url = f"postgresql://outsider@/{database}?host={quote(str(pg_server.socket_dir))}"
    told = {}
    for mode in ("libpq", "no-libpq", "full"):
        env = {**__import__("os").environ, "MYPKG_NO_FASTPATH": "1" if mode == "full" else ""}
        result = subprocess.run([sys.executable, "-c", PRIVILEGES, url, mode], capture_output=True, text=True,
                                timeout=60, env=env)
        told[mode] = (result.returncode, result.stderr.strip())
    assert told["libpq"] == told["no-libpq"] == told["full"]
    code, line = told["full"]
    assert code == 1 and "permission denied" in line and len(line.splitlines()) == 1


def test_the_ledger_read_in_one_value_equals_psycopgs_row_by_row(postgresql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from mypkg.migrate.database import ledger
    from mypkg.migrate.fast import answers as fastpath

    mypkg.upgrade(postgresql_url)
    engine = sa.create_engine(postgresql_url)
    with engine.begin() as connection:  # rows with no checksum, and other outcomes
        for revision, outcome in (("r1", "failed"), ("r2", "backfilling"), ("r3", "stamped")):
            ledger.write(connection, revision=revision, direction="upgrade", checksum=None,
                         started_at=ledger.now(), outcome=outcome)
    engine.dispose()
    through_libpq = fastpath.read_state(postgresql_url)
    monkeypatch.setattr(libpq, "_lib", None)
    monkeypatch.setattr(libpq, "_candidates", lambda: [])
    through_psycopg = fastpath.read_state(postgresql_url)
    assert through_libpq is not None and through_libpq == through_psycopg
    assert through_libpq.ledger[-3:] == [("r1", None, "failed"), ("r2", None, "backfilling"), ("r3", None, "stamped")]
    assert len(through_libpq.ledger) == len(mypkg.history()) + 3


def test_the_libpq_loaded_is_the_one_psycopg_uses() -> None:
    import psycopg

    assert libpq.load().PQlibVersion() == psycopg.pq.version()
    if psycopg.pq.__impl__ == "binary":  # psycopg[binary]: its own copy, not the system's
        assert "psycopg_binary" in libpq.load()._name


def test_a_conda_environment_s_libpq_comes_before_the_system_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = {"darwin": "libpq.5.dylib", "win32": "libpq.dll"}.get(sys.platform, "libpq.so.5")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / name).write_bytes(b"")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    found = libpq._candidates()
    assert found.index(str(tmp_path / "lib" / name)) == found.index(name) - 1


def test_a_library_without_libpq_s_functions_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    real = libpq.load()._name
    monkeypatch.setattr(libpq, "_lib", None)
    monkeypatch.setattr(libpq, "_candidates", lambda: ["libc.so.6", "no-such-library.so", real])
    assert libpq.load()._name == real
    monkeypatch.setattr(libpq, "_lib", None)
    monkeypatch.setattr(libpq, "_candidates", lambda: ["libc.so.6"])
    with pytest.raises(libpq.Unavailable):
        libpq.load()


@pytest.mark.parametrize("value", [None, "0", "-1", "1", "1.9", "2", "2.5", "7", "30"])
def test_the_connect_timeout_is_read_as_psycopg_reads_it(value: str | None) -> None:
    """libpq's rules, as psycopg applies them: 0 or less (or none) is its own default, 2 s at least."""
    from psycopg.conninfo import timeout_from_conninfo

    assert libpq._timeout(value) == timeout_from_conninfo({} if value is None else {"connect_timeout": value})


@pytest.mark.parametrize("value", ["", "plain", "two words", "it's", "back\\slash", "tab\there", "=sign", "ümlaut"])
def test_conninfo_values_are_parsed_back_as_given(value: str) -> None:
    """Parsed by libpq's own rules (psycopg's conninfo_to_dict calls PQconninfoParse): an empty
    password must not swallow the next parameter, a quote or a backslash must survive."""
    from psycopg.conninfo import conninfo_to_dict

    params = {"password": value, "dbname": "app", "application_name": value}
    assert conninfo_to_dict(libpq.conninfo(params)) == params
