"""The Python API an application calls, and what a failing revision leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.migrate.database import connections as database
from mypkg.migrate.errors import MigrateError, UsageError

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]


def test_the_package_exports_the_whole_api() -> None:
    from mypkg.migrate import commands as api

    missing = set(api.__all__) - set(mypkg.__all__)
    assert not missing, missing
    for name in mypkg.__all__:
        assert getattr(mypkg, name) is not None


def test_ledger_and_verify_through_the_package(sqlite_url: str) -> None:
    result = mypkg.upgrade(sqlite_url)
    rows = mypkg.applied_history(sqlite_url)
    assert [(row.revision, row.direction, row.outcome) for row in rows] == [
        (step.revision, "upgrade", "applied") for step in result.applied
    ]
    assert isinstance(rows[0], mypkg.LedgerRow) and rows[0].finished_at >= rows[0].started_at
    assert mypkg.verify(sqlite_url) == []


class TestTargets:
    """The database may be given as a URL string, a URL, an Engine or a Connection."""

    def test_upgrade_with_url_string_reports_each_revision(self, db_url: str) -> None:
        seen: list[mypkg.AppliedRevision] = []
        result = mypkg.upgrade(db_url, on_applied=seen.append)
        assert result.before == () and result.after == (HEAD,)
        assert [step.revision for step in seen] == REVISIONS == [s.revision for s in result.applied]
        assert all(step.direction == "upgrade" and step.seconds >= 0 for step in seen)
        assert mypkg.status(db_url).at_head

    def test_upgrade_with_engine_then_connection(self, db_url: str) -> None:
        engine = database.create_engine(db_url)
        try:
            mypkg.upgrade(engine, REVISIONS[1])
            assert mypkg.current(engine) == (REVISIONS[1],)
            with engine.connect() as connection:
                mypkg.upgrade(connection)
                assert mypkg.current(connection) == (HEAD,)
        finally:
            engine.dispose()

    def test_sqlite_engine_for_the_app_enforces_foreign_keys(self, sqlite_url: str) -> None:
        mypkg.upgrade(sqlite_url)
        engine = database.create_engine(sqlite_url)
        try:
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                connection.execute(sa.text("INSERT INTO note (my_table_id, body) VALUES (42, 'x')"))
        finally:
            engine.dispose()

    def test_unknown_revision_is_a_usage_error(self, sqlite_url: str) -> None:
        with pytest.raises(UsageError, match="unknown revision"):
            mypkg.upgrade(sqlite_url, "nope")

    def test_check_returns_no_differences_at_head(self, db_url: str) -> None:
        mypkg.upgrade(db_url)
        assert mypkg.check(db_url) == []

    def test_check_refuses_a_database_behind_head(self, db_url: str) -> None:
        mypkg.upgrade(db_url, REVISIONS[0])
        with pytest.raises(MigrateError, match="not at head"):
            mypkg.check(db_url)

    def test_offline_sql_for_postgresql_wraps_each_revision_in_a_transaction(self) -> None:
        sql = mypkg.offline_sql("upgrade", "base:head", "postgresql://u@h/db")
        assert sql.count("BEGIN;") >= len(REVISIONS) - 1
        assert "CREATE INDEX CONCURRENTLY" in sql


FAILING_REVISION = '''\
"""test-only: creates a table, then fails

Revision ID: 0badf00d0001
Revises: {parent}
"""
import sqlalchemy as sa
from alembic import op

revision = "0badf00d0001"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("my_table", sa.Column("half_column", sa.Integer, nullable=True))
    op.execute("UPDATE my_table SET name = name")
    raise RuntimeError("deliberate failure after DDL")


def downgrade() -> None:
    pass
'''


def run_copy(source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m mypkg`` from a copy of the sources (its own alembic/ folder)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("MYPKG_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mypkg", *args],
        cwd=source, env=env, capture_output=True, text=True, timeout=120,
    )


class TestFailingRevision:
    """A revision that raises: exit 1, its id in the message, the database at the last good revision."""

    def test_failure_rolls_back_only_the_failing_revision(self, source_copy: Path, db_url: str) -> None:
        versions = source_copy / "alembic" / "versions"
        (versions / "9999_0badf00d0001_fails.py").write_text(FAILING_REVISION.format(parent=HEAD))
        result = run_copy(source_copy, "--url", db_url, "upgrade")
        assert result.returncode == 1
        error = result.stderr.strip().splitlines()
        assert len(error) == 1 and "Traceback" not in result.stderr
        assert "revision 0badf00d0001" in error[0] and "deliberate failure after DDL" in error[0]
        assert f"is at {HEAD}" in error[0]
        # Every earlier revision committed; nothing of the failing one remains.
        assert mypkg.current(db_url) == (HEAD,)
        engine = database.create_engine(db_url)
        try:
            inspector = sa.inspect(engine)
            assert "half_done" not in inspector.get_table_names()
            assert "half_column" not in {c["name"] for c in inspector.get_columns("my_table")}
        finally:
            engine.dispose()
        # With the script fixed, the next run completes.
        fixed = (versions / "9999_0badf00d0001_fails.py").read_text().replace(
            '    raise RuntimeError("deliberate failure after DDL")\n', ""
        )
        (versions / "9999_0badf00d0001_fails.py").write_text(fixed)
        again = run_copy(source_copy, "--url", db_url, "upgrade")
        assert again.returncode == 0, again.stderr
        assert "applied  0badf00d0001" in again.stdout


def test_a_script_that_calls_sys_exit_fails_like_any_other(source_copy: Path, tmp_path: Path) -> None:
    """Before: exit 3, nothing on stderr, no ledger row."""
    from tests.history import histories

    exits = histories.script("9999_0badex170001_exit.py", "0badex170001", HEAD, "test only: sys.exit(3)",
                             upgrade='op.add_column("my_table", sa.Column("exited", sa.Integer))\n'
                                     'import sys\nsys.exit(3)')
    (source_copy / "alembic" / "versions" / exits.filename).write_text(exits.text)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    result = run_copy(source_copy, "--url", url, "upgrade")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "revision 0badex170001" in line and "sys.exit(3)" in line and f"is at {HEAD}" in line
    assert mypkg.current(url) == (HEAD,)
    rows = [(row.revision, row.outcome) for row in mypkg.applied_history(url)]
    assert rows[-1] == ("0badex170001", "failed")


def test_an_upgrade_never_imports_the_models(tmp_path: Path) -> None:
    """A start-up promise: applying revisions needs their scripts, never the ORM models (a
    sizeable part of every start, and an application's code). Through the API and the
    command, full path (a fresh database) and both directions."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'app.db'}"
    code = ("import sys, mypkg; mypkg.upgrade(sys.argv[1]); mypkg.downgrade(sys.argv[1], '-1'); "
            "mypkg.upgrade(sys.argv[1]); print(sorted(m for m in sys.modules if m.startswith('mypkg.models')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    api = subprocess.run([sys.executable, "-c", code, url], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert api.returncode == 0, api.stderr
    assert api.stdout.strip() == "[]"
    cli = subprocess.run([sys.executable, "-X", "importtime", "-m", "mypkg", "--url", f"sqlite:///{tmp_path / 'cli.db'}",
                          "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and "upgraded from base" in cli.stdout, cli.stderr
    assert "mypkg.migrate.runtime.runner" in cli.stderr  # the world claimed: the full path ran
    assert "mypkg.models" not in cli.stderr


def test_status_is_at_head_only_with_nothing_pending_and_nothing_to_repair(tmp_path: Path) -> None:
    """An empty database (no version row: nothing current, all pending) and one a revision
    behind are not at head; at head they are. (A plugin depending on the core's head is
    judged by ancestry too: tests/plugins/test_plugins.py.)"""
    from mypkg.migrate.results import Status

    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert mypkg.status(url).at_head is False  # nothing current: () is a subset of the heads, still behind
    mypkg.upgrade(url, REVISIONS[-2])
    assert mypkg.status(url).at_head is False
    mypkg.upgrade(url)
    state = mypkg.status(url)
    assert state.at_head is True
    assert state._replace(needs_repair=(HEAD,)).at_head is False
    assert Status(state.database, (REVISIONS[-2],), state.heads, state.applied, []).at_head is False


def test_a_caller_holding_a_failed_revisions_error_leaves_the_database_writable(source_copy: Path,
                                                                                tmp_path: Path) -> None:
    """A revision that fails halfway through reading a cursor (prefect's b75d279ba985 under
    roundtrip): the error a program catches kept the script's frames, the frames the open
    cursor, and SQLite the closed connection's read lock: every later write in that process
    failed with "database is locked", the next upgrade included."""
    from tests.history import histories

    halfway = histories.script(
        "9999_0badc0250001_halfway.py", "0badc0250001", HEAD, "test only: fails while iterating a cursor",
        upgrade=('op.create_table("typed", sa.Column("id", sa.Integer, primary_key=True),\n'
                 '                sa.Column("name", sa.String(20), nullable=False))\n'
                 'bind = op.get_bind()\n'
                 'for number in range(20):\n'
                 '    bind.execute(sa.text(f"INSERT INTO my_table (name, display_name) VALUES (\'a\', \'b{number}\')"))\n'
                 'results = bind.execute(sa.text("SELECT id FROM my_table"))\n'
                 'for (number,) in results:  # the cursor still open when the insert fails\n'
                 '    bind.execute(sa.text("INSERT INTO typed (name) VALUES (NULL)"))'))
    (source_copy / "alembic" / "versions" / halfway.filename).write_text(halfway.text)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    program = (
        "import sqlite3, sys\n"
        "import mypkg\n"
        "from mypkg.migrate.errors import MigrateError\n"
        "try:\n"
        f"    mypkg.upgrade({url!r})\n"
        "except MigrateError as exc:\n"
        "    held = exc  # a program keeps it: to log it, to retry\n"
        "    writer = sqlite3.connect(sys.argv[1], timeout=0.5, isolation_level=None)\n"
        "    writer.execute('BEGIN IMMEDIATE')\n"
        "    writer.execute('CREATE TABLE written_after (id INTEGER)')\n"
        "    writer.execute('COMMIT')\n"
        "    writer.close()\n"
        "    print('written')\n")
    env = {**os.environ, "PYTHONPATH": str(source_copy)}
    env.pop("MYPKG_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path / "app.db")], cwd=source_copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "written" in done.stdout, done.stderr[-2000:]
    assert mypkg.current(url) == (HEAD,)


def test_a_revision_reading_through_a_second_connection_of_its_engine_runs(source_copy: Path, tmp_path: Path) -> None:
    """zenml's first revision asks ``Inspector.from_engine(op.get_bind().engine)`` which tables
    exist: a second connection of the runner's engine. That engine began every transaction
    with BEGIN IMMEDIATE, so the reader queued behind the migrator's own write lock until
    the busy timeout ("database is locked"), where plain alembic reads and goes on."""
    from tests.history import histories

    reads = histories.script(
        "9999_0bad2e4d0001_reads.py", "0bad2e4d0001", HEAD, "test only: reads through its engine",
        upgrade=('from sqlalchemy.engine.reflection import Inspector\n'
                 'op.create_table("made_first", sa.Column("id", sa.Integer, primary_key=True))\n'
                 'tables = Inspector.from_engine(op.get_bind().engine).get_table_names()\n'
                 'assert "my_table" in tables, tables  # committed before: a reader sees it\n'
                 'op.create_table("made_after", sa.Column("id", sa.Integer, primary_key=True))'))
    (source_copy / "alembic" / "versions" / reads.filename).write_text(reads.text)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    env = {**os.environ, "PYTHONPATH": str(source_copy), "MYPKG_BUSY_TIMEOUT": "3"}
    env.pop("MYPKG_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "mypkg", "--url", url, "upgrade"], cwd=source_copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert mypkg.current(url) == ("0bad2e4d0001",)
    engine = database.create_engine(url)
    try:
        assert {"made_first", "made_after"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
