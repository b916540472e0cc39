"""MariaDB as a first-class database: a real server the suite starts itself (unix socket,
as the ``mysql`` user), PyMySQL. The lock, the shipped revisions both ways, the safe
baseline, and honesty about DDL that is not transactional: a revision that fails part way
is recorded as partial, blocks further migrations until ``repair``."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import mypkg
from tests.conftest import Cli, applied_lines, command_prefix, run_at_once

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]


def test_life_cycle(cli: Cli, mysql_url: str) -> None:
    up = cli("--url", mysql_url, "upgrade")
    assert up.returncode == 0, up.stderr
    assert [line.split()[1] for line in up.stdout.splitlines() if line.startswith("applied")] == REVISIONS
    assert cli("--url", mysql_url, "status").returncode == 0
    check = cli("--url", mysql_url, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert cli("--url", mysql_url, "verify").returncode == 0
    down = cli("--url", mysql_url, "downgrade", "base", "--yes")
    assert down.returncode == 0, down.stderr
    assert mypkg.current(mysql_url) == ()
    assert cli("--url", mysql_url, "upgrade").returncode == 0
    assert mypkg.current(mysql_url) == (HEAD,)


def test_stamp_checks_the_schema_in_a_scratch_database(cli: Cli, mysql_url: str, mariadb_server) -> None:  # noqa: ANN001
    assert cli("--url", mysql_url, "upgrade", REVISIONS[2]).returncode == 0
    refused = cli("--url", mysql_url, "stamp", "head")
    assert refused.returncode == 1 and "does not have the schema of head" in refused.stderr
    assert mypkg.current(mysql_url) == (REVISIONS[2],)
    with mariadb_server.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE 'mypkg\\_baseline\\_%'")
        assert cursor.fetchall() == ()  # the scratch database was dropped


def test_backup_names_the_right_tool(cli: Cli, mysql_url: str) -> None:
    result = cli("--url", mysql_url, "upgrade", "--backup")
    assert result.returncode == 2 and "back mysql up with mariadb-dump (mysqldump)" in result.stderr


def test_eight_migrators_at_once_apply_each_revision_once(mysql_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    results = run_at_once([*command_prefix(), "--url", mysql_url, "upgrade", "--lock-timeout", "120"], 8,
                          env=env, cwd=tmp_path)
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
    assert applied_lines(results) == {rev: 1 for rev in REVISIONS}
    ledger = collections.Counter(row.revision for row in mypkg.applied_history(mysql_url) if row.outcome == "applied")
    assert ledger == {rev: 1 for rev in REVISIONS}
    assert mypkg.current(mysql_url) == (HEAD,)


PARTLY_FAILING = '''\\
"""test only: adds a column, then fails when told to

Revision ID: 0badf00d0003
Revises: {parent}
"""
import os

import sqlalchemy as sa
from alembic import op

revision = "0badf00d0003"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("my_table", sa.Column("half_done", sa.Integer, nullable=True))
    if os.environ.get("MYPKG_TEST_FAIL"):
        raise RuntimeError("deliberate failure after DDL")
    op.create_index("ix_my_table_half_done", "my_table", ["half_done"])


def downgrade() -> None:
    op.drop_index("ix_my_table_half_done", table_name="my_table")
    op.drop_column("my_table", "half_done")
'''


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "mariadb+pymysql"])
def test_a_revision_that_fails_part_way_is_recorded_and_blocks_until_repaired(
    source_copy: Path, mysql_url: str, mariadb_server, scheme: str  # noqa: ANN001
) -> None:
    """``mariadb+pymysql://`` is MySQL to the runner as ``mysql+pymysql://`` is: partial
    tracking (and the named lock, below) hold whichever spelling the URL uses."""
    mysql_url = mysql_url.replace("mysql+pymysql://", f"{scheme}://", 1)
    (source_copy / "alembic" / "versions" / "9999_0badf00d0003_partly.py").write_text(PARTLY_FAILING.format(parent=HEAD))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(source_copy)}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mypkg", "--url", mysql_url, *args], cwd=source_copy,
                              env={**env, **extra}, capture_output=True, text=True, timeout=180)

    failed = run("upgrade", MYPKG_TEST_FAIL="1")
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    assert "revision 0badf00d0003" in line and f"is at {HEAD}" in line
    assert "not transactional" in line and "repair 0badf00d0003 --applied or --reverted" in line
    rows = [r for r in mypkg.applied_history(mysql_url) if r.revision == "0badf00d0003"]
    assert len(rows) == 1, rows
    (row,) = rows
    assert row.outcome == "partial" and "ADD COLUMN half_done" in row.detail

    status = run("status")
    assert status.returncode == 1 and "repair:   0badf00d0003 failed part way" in status.stdout
    refused = run("upgrade")
    assert refused.returncode == 1 and "needs repair" in refused.stderr and "nothing was run" in refused.stderr
    # What ran is named, so the operator knows what to undo or finish.
    assert "revision 0badf00d0003 failed part way (" in refused.stderr and "ADD COLUMN half_done" in refused.stderr
    # A repair that the schema contradicts is refused: the column is still there.
    contradicted = run("repair", "0badf00d0003", "--reverted")
    assert contradicted.returncode == 1 and "does not have the schema of" in contradicted.stderr
    # The operator undoes it by hand, records that, and the next upgrade completes.
    with mariadb_server.connect(mysql_url.split("?")[0].rsplit("/", 1)[-1]) as connection, connection.cursor() as cursor:
        cursor.execute("ALTER TABLE my_table DROP COLUMN half_done")
    repaired = run("repair", "0badf00d0003", "--reverted")
    assert repaired.returncode == 0, repaired.stderr
    assert "recorded 0badf00d0003 as reverted by hand" in repaired.stdout
    done = run("upgrade")
    assert done.returncode == 0, done.stderr
    assert mypkg.current(mysql_url) == ("0badf00d0003",)
    assert run("status").returncode == 0
    not_waiting = run("repair", "0badf00d0003", "--applied")
    assert not_waiting.returncode == 2 and "does not await repair" in not_waiting.stderr


def test_sigterm_half_way_through_a_revision_says_partial_and_asks_for_repair(
    source_copy: Path, mysql_url: str, tmp_path: Path
) -> None:
    """MariaDB commits each DDL statement: a SIGTERM after the first ones cannot roll them
    back, so the message and the ledger say what a failure says (partial, repair)."""
    from tests.runtime.test_concurrency import SLOW_REVISION

    (source_copy / "alembic" / "versions" / "9999_5107dead0001_slow.py").write_text(SLOW_REVISION.format(parent=HEAD))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(source_copy)}
    marker = tmp_path / "half-way"
    migrator = subprocess.Popen([sys.executable, "-m", "mypkg", "--url", mysql_url, "upgrade"], cwd=source_copy,
                                env={**env, "MYPKG_TEST_SLOW_MARKER": str(marker)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and migrator.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), migrator.communicate(timeout=60)
    migrator.send_signal(signal.SIGTERM)
    _, err = migrator.communicate(timeout=60)
    assert migrator.returncode == 143, err
    (line,) = err.strip().splitlines()
    assert "rolled back" not in line
    assert "revision 5107dead0001 stopped part way" in line and "not transactional" in line
    assert "repair 5107dead0001 --applied or --reverted" in line
    rows = [r for r in mypkg.applied_history(mysql_url) if r.revision == "5107dead0001"]
    assert [r.outcome for r in rows] == ["partial"]
    assert "CREATE TABLE slow_partial" in rows[0].detail and "stopped by Terminated" in rows[0].detail
    status = subprocess.run([sys.executable, "-m", "mypkg", "--url", mysql_url, "status"], cwd=source_copy,
                            env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 1 and "repair:   5107dead0001 failed part way" in status.stdout


def slow_downgrade(parent: str) -> str:
    """Two tables; the downgrade drops one, then waits when told to (a marker file)."""
    from tests.history import histories

    return histories.script(
        "9999_5107dead0002_down.py", "5107dead0002", parent, "test only: a downgrade that waits half way",
        upgrade='op.create_table("first_half", sa.Column("id", sa.Integer, primary_key=True))\n'
                'op.create_table("second_half", sa.Column("id", sa.Integer, primary_key=True))',
        downgrade='import os, time\nop.drop_table("second_half")\n'
                  'if os.environ.get("MYPKG_TEST_SLOW_MARKER"):\n'
                  '    __import__("pathlib").Path(os.environ["MYPKG_TEST_SLOW_MARKER"]).write_text("half way")\n'
                  '    time.sleep(120)\n'
                  'op.drop_table("first_half")',
    ).text


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_downgrade_stopped_half_way_and_reverted_by_hand_is_recorded_at_the_revision_before(
    source_copy: Path, mysql_url: str, mariadb_server, tmp_path: Path, how: signal.Signals  # noqa: ANN001
) -> None:
    """repair REV --reverted after an interrupted downgrade moves the version table to the
    revision before REV (it still named REV): status and upgrade see the truth."""
    (source_copy / "alembic" / "versions" / "9999_5107dead0002_down.py").write_text(slow_downgrade(HEAD))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(source_copy)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mypkg", "--url", mysql_url, *args], cwd=source_copy,
                              env=env, capture_output=True, text=True, timeout=180)

    assert run("upgrade").returncode == 0
    marker = tmp_path / "half-way"
    migrator = subprocess.Popen([sys.executable, "-m", "mypkg", "--url", mysql_url, "downgrade", "-1"],
                                cwd=source_copy, env={**env, "MYPKG_TEST_SLOW_MARKER": str(marker)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and migrator.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), migrator.communicate(timeout=60)
    migrator.send_signal(how)
    migrator.communicate(timeout=60)
    assert mypkg.current(mysql_url) == ("5107dead0002",)
    assert run("status").returncode == 1  # awaiting repair

    # Refused while the schema contradicts it, then finished by hand and recorded.
    contradicted = run("repair", "5107dead0002", "--reverted")
    assert contradicted.returncode == 1 and "does not have the schema of" in contradicted.stderr
    with mariadb_server.connect(mysql_url.split("?")[0].rsplit("/", 1)[-1]) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE first_half")
    repaired = run("repair", "5107dead0002", "--reverted")
    assert repaired.returncode == 0, repaired.stderr
    assert mypkg.current(mysql_url) == (HEAD,)
    status = run("status")
    assert status.returncode == 1 and "5107dead0002" in status.stdout and "repair:" not in status.stdout
    again = run("upgrade")
    assert again.returncode == 0, again.stderr
    assert mypkg.current(mysql_url) == ("5107dead0002",) and run("status").returncode == 0


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "mariadb+pymysql"])
def test_the_lock_is_named_for_the_database(mysql_url: str, mariadb_server, scheme: str) -> None:  # noqa: ANN001
    """Named locks are server-wide: a migrator of another database does not wait."""
    mysql_url = mysql_url.replace("mysql+pymysql://", f"{scheme}://", 1)
    other = mariadb_server.create_database().replace("mysql+pymysql://", f"{scheme}://", 1)
    try:
        name = mysql_url.split("?")[0].rsplit("/", 1)[-1]
        with mariadb_server.connect(name) as holder, holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (f"mypkg-migrate:{name}",))
            assert cursor.fetchone()[0] == 1
            cursor.execute("SELECT CONNECTION_ID(), host FROM information_schema.processlist WHERE id = CONNECTION_ID()")
            holder_id, holder_host = cursor.fetchone()
            env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
            elsewhere = subprocess.run([*command_prefix(), "--url", other, "upgrade", "--lock-timeout", "2"],
                                       env=env, capture_output=True, text=True, timeout=120)
            assert elsewhere.returncode == 0, elsewhere.stderr
            here = subprocess.run([*command_prefix(), "--url", mysql_url, "upgrade", "--lock-timeout", "1"],
                                  env=env, capture_output=True, text=True, timeout=120)
            assert here.returncode == 1
            assert "waiting up to 1s for the migration lock" in here.stderr
            assert f"held by server connection {holder_id} from {holder_host}" in here.stderr.splitlines()[0]
            assert mypkg.current(mysql_url) == ()
    finally:
        mariadb_server.drop_database(other)


def test_a_long_database_names_lock_is_the_one_every_release_takes(mariadb_server) -> None:  # noqa: ANN001
    """GET_LOCK names stop at 64 characters: past that, the lock is named for a hash of the
    database's name, cut to 64, as every release names it. A migrator of another release (or
    an operator's script) holding that name makes this one wait."""
    import hashlib

    name = "tenant_" + "x" * 50 + uuid.uuid4().hex[:7]  # 64 characters, the most MariaDB takes
    with mariadb_server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        with mariadb_server.connect(name) as holder, holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)",
                           (f"mypkg-migrate:{hashlib.sha256(name.encode()).hexdigest()}"[:64],))
            assert cursor.fetchone()[0] == 1
            env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
            waited = subprocess.run([*command_prefix(), "--url", mariadb_server.url(name), "upgrade",
                                     "--lock-timeout", "1"], env=env, capture_output=True, text=True, timeout=120)
            assert waited.returncode == 1 and "waiting up to 1s for the migration lock" in waited.stderr, waited.stderr
            assert mypkg.current(mariadb_server.url(name)) == ()
    finally:
        with mariadb_server.connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def test_offline_sql_applies_with_the_mariadb_client(cli: Cli, mysql_url: str, mariadb_server) -> None:  # noqa: ANN001
    from tests.servers.mariadb import find

    sql = cli("--url", mysql_url, "upgrade", "--sql", "base:head")
    assert sql.returncode == 0, sql.stderr
    name = mysql_url.split("?")[0].rsplit("/", 1)[-1]
    applied = subprocess.run([find("mariadb"), f"--socket={mariadb_server.socket}", "-u", "root", name],
                             input=sql.stdout, capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert mypkg.current(mysql_url) == (HEAD,)
    assert mypkg.check(mysql_url) == []


def test_a_migrator_killed_mid_revision_leaves_it_awaiting_repair(
    source_copy: Path, mysql_url: str, mariadb_server, tmp_path: Path  # noqa: ANN001
) -> None:
    """DDL already committed when the migrator dies: the revision's ``running`` row stays,
    and with no migrator alive it awaits repair instead of being run again over its leftovers."""
    import signal
    import time

    from tests.runtime.test_concurrency import SLOW_REVISION

    (source_copy / "alembic" / "versions" / "9999_5107dead0001_slow.py").write_text(SLOW_REVISION.format(parent=HEAD))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(source_copy)}
    marker = tmp_path / "half-way"
    migrator = subprocess.Popen([sys.executable, "-m", "mypkg", "--url", mysql_url, "upgrade"], cwd=source_copy,
                                env={**env, "MYPKG_TEST_SLOW_MARKER": str(marker)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert migrator.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mypkg", "--url", mysql_url, *args], cwd=source_copy, env=env,
                              capture_output=True, text=True, timeout=120)

    # While it runs, its revision is not reported as stranded.
    assert "repair:" not in run("status").stdout
    migrator.send_signal(signal.SIGKILL)
    migrator.communicate()
    status = run("status")
    assert status.returncode == 1 and "repair:   5107dead0001 failed part way" in status.stdout
    refused = run("upgrade")
    assert refused.returncode == 1 and "needs repair" in refused.stderr and "killed?" in refused.stderr
    name = mysql_url.split("?")[0].rsplit("/", 1)[-1]
    with mariadb_server.connect(name) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE slow_partial")
        cursor.execute("ALTER TABLE my_table DROP COLUMN slow_column")
    assert run("repair", "5107dead0001", "--reverted").returncode == 0
    done = run("upgrade")
    assert done.returncode == 0, done.stderr
    assert mypkg.current(mysql_url) == ("5107dead0001",)


def test_the_handshake_bound_is_lifted_once_connected(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement (an index build) may run past --connect-timeout: only the greeting is bounded."""
    from mypkg.migrate.database import connections

    monkeypatch.setenv("MYPKG_CONNECT_TIMEOUT", "1")
    engine = connections.create_engine(mysql_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT SLEEP(2.5)").scalar() == 0
    finally:
        engine.dispose()


def test_a_first_revision_failing_at_its_first_statement_is_failed_not_partial(
    cli: Cli, mysql_url: str, mariadb_server  # noqa: ANN001
) -> None:
    """Alembic creates its version table just before the first revision runs (DDL: committed
    at once on MariaDB). That statement is Alembic's, not the revision's: a first revision
    that fails at its own first statement changed nothing, so it is failed, with no repair."""
    first = REVISIONS[0]
    mypkg.upgrade(mysql_url, first)
    mypkg.downgrade(mysql_url, "base", confirm_base=True)  # the ledger stays: migrated here before
    name = mysql_url.split("?")[0].rsplit("/", 1)[-1]
    with mariadb_server.connect(name) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE alembic_version")
        cursor.execute("CREATE TABLE my_table (id INT PRIMARY KEY)")  # in the way of the first statement
    failed = cli("--url", mysql_url, "upgrade")
    assert failed.returncode == 1 and f"revision {first}" in failed.stderr
    assert "not transactional" not in failed.stderr and "repair" not in failed.stderr
    row = [r for r in mypkg.applied_history(mysql_url) if r.revision == first][-1]
    assert row.outcome == "failed", row
    status = cli("--url", mysql_url, "status")
    assert status.returncode == 1 and "repair:" not in status.stdout
    with mariadb_server.connect(name) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE my_table")
    done = cli("--url", mysql_url, "upgrade")  # nothing to repair: it simply runs
    assert done.returncode == 0, done.stderr


def test_a_partial_revision_lists_a_repeated_statement_once(source_copy: Path, mysql_url: str) -> None:
    """What a partial revision ran is listed for the operator who repairs it: a statement
    repeated in a row (a loop, a backfill's batches) once, after what came before it."""
    from tests.history import histories

    repeated = histories.script(
        "9999_0badf00d0004_repeats.py", "0badf00d0004", HEAD, "test only: one change, three updates, a failure",
        upgrade='op.add_column("my_table", sa.Column("repeat_note", sa.String(20), nullable=True))\n'
                'for _ in range(3):\n'
                '    op.execute("UPDATE my_table SET repeat_note = \'repeated\'")\n'
                'op.execute("ALTER TABLE no_such_table ADD COLUMN x INT")')
    (source_copy / "alembic" / "versions" / repeated.filename).write_text(repeated.text)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(source_copy)}
    failed = subprocess.run([sys.executable, "-m", "mypkg", "--url", mysql_url, "upgrade"], cwd=source_copy,
                            env=env, capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1 and "repair 0badf00d0004" in failed.stderr, failed.stderr
    (row,) = [r for r in mypkg.applied_history(mysql_url) if r.revision == "0badf00d0004"]
    ran = row.detail.split("ran before it failed: ", 1)[1].split("; ")
    assert [statement.split()[0] for statement in ran] == ["ALTER", "UPDATE"], row.detail
    assert not any("no_such_table" in statement for statement in ran)  # refused by the server: it did nothing
