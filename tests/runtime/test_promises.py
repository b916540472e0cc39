"""Promises that a sampled mutation run found unpinned (issue 19): each test here fails when
the behaviour it names is broken."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.migrate.database import connections, ledger, settings
from mypkg.migrate.errors import MigrateError

REVISIONS = [rev.revision for rev in mypkg.history()]
HEAD = REVISIONS[-1]


def test_mask_hides_the_password_of_a_parseable_url() -> None:
    assert settings.mask("postgresql://app:pw@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert settings.mask(sa.engine.make_url("postgresql+psycopg://app:pw@db/app")) == "postgresql+psycopg://app:***@db/app"
    assert settings.mask("sqlite:///app.db") == "sqlite:///app.db"


@pytest.mark.parametrize("target, expected", [("base+2", 1), ("head-1", -2)])
def test_symbolic_relative_targets(db_url: str, target: str, expected: int) -> None:
    if target.startswith("head"):
        mypkg.upgrade(db_url)
        mypkg.downgrade(db_url, target)
    else:
        mypkg.upgrade(db_url, target)
    assert mypkg.current(db_url) == (REVISIONS[expected],)


def test_a_handed_in_postgresql_connection_keeps_no_lock_and_no_setting(postgresql_url: str) -> None:
    engine = connections.create_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            mypkg.upgrade(connection, statement_lock_timeout=5)
            held = connection.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )).scalar()
            timeout = connection.execute(sa.text("SHOW lock_timeout")).scalar()
            connection.rollback()
    finally:
        engine.dispose()
    assert held == 0  # released, though the caller's session lives on
    assert timeout == "0"  # the statement lock timeout was the revisions' own (SET LOCAL)
    assert mypkg.current(postgresql_url) == (HEAD,)


def test_a_revision_recorded_as_applied_but_no_longer_shipped(sqlite_url: str) -> None:
    mypkg.upgrade(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"INSERT INTO {ledger.TABLE} (revision, direction, checksum, package_version, started_at, finished_at, "
            "duration_ms, outcome) VALUES ('deadbeef0001', 'upgrade', 'x', '0.0.1', '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00', 1, 'applied')"
        )
    problems = mypkg.verify(sqlite_url)
    assert [(p.revision, p.kind) for p in problems] == [("deadbeef0001", "missing script")]
    with pytest.raises(MigrateError, match="applied revision\\(s\\) differ from the scripts shipped"):
        mypkg.upgrade(sqlite_url)


def test_the_ledger_orders_rows_by_an_autoincrementing_id_and_requires_its_columns(db_url: str) -> None:
    mypkg.upgrade(db_url, REVISIONS[1])
    mypkg.downgrade(db_url, "-1")
    rows = mypkg.applied_history(db_url)
    assert [row.id for row in rows] == sorted(row.id for row in rows)
    assert [(row.revision, row.outcome) for row in rows] == [
        (REVISIONS[0], "applied"), (REVISIONS[1], "applied"), (REVISIONS[1], "reverted"),
    ]
    engine = connections.create_engine(db_url)
    try:
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns(ledger.TABLE)}
    finally:
        engine.dispose()
    required = {"id", "revision", "direction", "package_version", "started_at", "finished_at", "duration_ms", "outcome"}
    assert {name for name, column in columns.items() if not column["nullable"]} == required


def test_the_fast_path_connects_to_the_host_in_the_url() -> None:
    from mypkg.migrate.fast import answers as fastpath

    parsed = fastpath.parse("postgresql://app@127.0.0.1:6543/app")
    assert parsed is not None
    assert (parsed.parts["ipv4host"], parsed.parts["port"], parsed.parts["database"]) == ("127.0.0.1", "6543", "app")



# --- settings: what the settings mutation run found unpinned ---------------------------


@pytest.mark.parametrize("text, ok", [("0.5", True), ("30", True), ("0", False), ("-1", False), ("-0.5", False),
                                      ("nan", False), ("inf", False), ("ten", False)])
def test_the_connect_timeout_must_be_a_positive_finite_number(text: str, ok: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from mypkg.migrate.errors import UsageError

    monkeypatch.setenv("MYPKG_CONNECT_TIMEOUT", text)
    if ok:
        assert settings.connect_timeout() == float(text)
    else:
        with pytest.raises(UsageError, match="must be a positive number of seconds"):
            settings.connect_timeout()


def test_mask_hides_secret_query_values_and_keeps_the_rest() -> None:
    assert settings.mask("sqlite:///x.db?password=s3&mode=ro") == "sqlite:///x.db?password=***&mode=ro"
    assert settings.mask("sqlite:///x.db?mode=ro&token=t0") == "sqlite:///x.db?mode=ro&token=***"
    masked = settings.mask(sa.engine.make_url("postgresql://u:p@h/d?sslpassword=x&application_name=app"))
    assert masked == "postgresql://u:***@h/d?application_name=app&sslpassword=***"
    assert settings.mask("postgresql://u@h/d?application_name=app") == "postgresql://u@h/d?application_name=app"


@pytest.mark.parametrize("port, ok", [(1, True), (65535, True), (0, False), (65536, False), (-5, False)])
def test_a_port_must_be_in_range(port: int, ok: bool) -> None:
    from mypkg.migrate.errors import UsageError

    text = f"postgresql://u@h:{port}/d"
    if ok:
        assert settings.parse_url(text).port == port
    else:
        with pytest.raises(UsageError, match=f"port {port} is out of range"):
            settings.parse_url(text)


def test_sqlite_query_parameters_turn_the_path_into_a_uri_once() -> None:
    plain = settings.parse_url("sqlite:///app.db?mode=ro")
    assert plain.database == "file:app.db" and plain.query == {"mode": "ro", "uri": "true"}
    already = settings.parse_url("sqlite:///file:app.db?mode=ro&uri=true")
    assert already.database == "file:app.db" and already.query == {"mode": "ro", "uri": "true"}
    assert settings.parse_url("sqlite:///app.db").database == "app.db"


def test_the_documented_defaults_are_the_ones_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """README and --help promise 30 s for SQLite's busy timeout, 10 s to connect, 300 s for the lock."""
    from mypkg.migrate.cli.parser import build_parser

    monkeypatch.delenv("MYPKG_BUSY_TIMEOUT", raising=False)
    args = build_parser("upgrade").parse_args(["upgrade"])
    assert args.lock_timeout == 300.0 and not hasattr(args, "busy_timeout")  # unset: the variable, else 30
    assert (settings.busy_timeout(), settings.DEFAULT_BUSY_TIMEOUT) == (30.0, 30.0)
    monkeypatch.setenv("MYPKG_BUSY_TIMEOUT", "2.5")
    assert settings.busy_timeout() == 2.5
    assert build_parser("status").parse_args(["status", "--busy-timeout", "4"]).busy_timeout == 4.0
    assert settings.DEFAULT_CONNECT_TIMEOUT == 10.0


# --- the run loop: what the sampled runner mutation run found unpinned ------------------

def test_only_a_lock_timeout_is_retried(source_copy, postgresql_url: str) -> None:  # noqa: ANN001
    """--statement-lock-timeout retries a revision that waited for a lock (55P03), not one
    that failed for another reason (here 22012, division by zero)."""
    from tests.history import histories
    from tests.runtime.test_api import run_copy

    divides = histories.script("9999_0badd1v10001_divide.py", "0badd1v10001", HEAD, "test only: division by zero",
                               upgrade='op.execute("SELECT 1 / 0")')
    (source_copy / "alembic" / "versions" / divides.filename).write_text(divides.text)
    result = run_copy(source_copy, "--url", postgresql_url, "upgrade", "--statement-lock-timeout", "1")
    assert result.returncode == 1
    assert "retry" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "0badd1v10001" in line and "division by zero" in line


@pytest.mark.parametrize("count, shown", [(3, "t0, t1, t2)"), (4, "t0, t1, t2, ...)")])
def test_a_foreign_database_names_three_of_its_tables(tmp_path, count: int, shown: str) -> None:  # noqa: ANN001
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as connection:
        for index in range(count):
            connection.execute(f"CREATE TABLE t{index} (id INTEGER)")
    with pytest.raises(MigrateError) as refused:
        mypkg.upgrade(f"sqlite:///{path}")
    assert f"has {count} table(s) ({shown} but no version table" in str(refused.value)


def test_a_source_tree_never_refuses_a_script_edited_after_it_was_read(source_copy, tmp_path) -> None:  # noqa: ANN001
    """An author's long-lived process (a dev server, a notebook) upgrades, the author edits a
    pending script, the process upgrades again: a source tree has no shipped manifest to be
    true to, so the edit runs (only an installed package refuses one)."""
    import subprocess
    import sys
    import textwrap

    url = f"sqlite:///{tmp_path / 'dev.db'}"
    program = textwrap.dedent(f"""
        import pathlib, mypkg
        from mypkg.migrate.history import manifest
        first = mypkg.history()[0].revision
        mypkg.upgrade({url!r}, first)
        assert manifest.load().source == "scripts"
        pending = pathlib.Path(mypkg.__file__).parent.parent / "alembic" / "versions"
        script = sorted(pending.glob("*.py"))[-1]
        script.write_text(script.read_text() + "\\n# edited by the author after the first upgrade\\n")
        print(mypkg.upgrade({url!r}).after[0])
    """)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MYPKG_")}
    done = subprocess.run([sys.executable, "-c", program], cwd=source_copy, env={**env, "PYTHONPATH": str(source_copy)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == mypkg.heads()[0]
