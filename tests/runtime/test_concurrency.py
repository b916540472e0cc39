"""Production behaviour: many migrators at once, a killed migrator, lock waits, table locks.

Everything runs against real SQLite files and the suite's real PostgreSQL server;
the migrators are real ``mypkg-migrate`` processes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.migrate.database import connections as database
from mypkg.migrate.database import locks as locking
from mypkg.migrate.database.target import resolve
from tests.conftest import Cli, command_prefix

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]
MIGRATORS = 8


def _tables_and_columns(url: str) -> dict[str, set[str]]:
    engine = database.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}
    finally:
        engine.dispose()


class TestManyMigratorsAtOnce:
    def test_eight_processes_apply_every_revision_exactly_once(self, db_url: str, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MYPKG_DATABASE_URL"}
        start = threading.Barrier(MIGRATORS)
        results: list[subprocess.CompletedProcess[str]] = []

        def migrate() -> None:
            start.wait()
            results.append(
                subprocess.run(
                    [*command_prefix(), "--url", db_url, "upgrade", "--lock-timeout", "120"],
                    cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
                )
            )

        threads = [threading.Thread(target=migrate) for _ in range(MIGRATORS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [r.returncode for r in results] == [0] * MIGRATORS, [r.stderr for r in results]
        applied = collections.Counter(
            line.split()[1]
            for r in results
            for line in r.stdout.splitlines()
            if line.startswith("applied ")
        )
        assert applied == {rev: 1 for rev in REVISIONS}
        nothing_to_do = sum("nothing to do" in r.stdout for r in results)
        assert nothing_to_do == MIGRATORS - 1
        assert mypkg.current(db_url) == (HEAD,)


SLOW_REVISION = '''\
"""test only: a slow revision, killed half way

Revision ID: 5107dead0001
Revises: {parent}
"""
import os
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "5107dead0001"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("slow_partial", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("my_table", sa.Column("slow_column", sa.Integer, nullable=True))
    marker = os.environ.get("MYPKG_TEST_SLOW_MARKER")
    if marker:
        Path(marker).write_text("half way")
        if op.get_bind().dialect.name == "postgresql":
            op.execute("SELECT pg_sleep(120)")
        else:
            time.sleep(120)


def downgrade() -> None:
    op.drop_column("my_table", "slow_column")
    op.drop_table("slow_partial")
'''


def _copy_env(source: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MYPKG_DATABASE_URL"}
    return {**env, "PYTHONPATH": str(source), **extra}


class TestKilledMigrator:
    def test_sigkill_mid_revision_leaves_the_previous_revision(
        self, source_copy: Path, db_url: str, tmp_path: Path
    ) -> None:
        (source_copy / "alembic" / "versions" / "9999_5107dead0001_slow.py").write_text(
            SLOW_REVISION.format(parent=HEAD)
        )
        marker = tmp_path / "half-way"
        migrator = subprocess.Popen(
            [sys.executable, "-m", "mypkg", "--url", db_url, "upgrade"],
            cwd=source_copy,
            env=_copy_env(source_copy, MYPKG_TEST_SLOW_MARKER=str(marker)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert migrator.poll() is None, migrator.communicate()
            assert time.monotonic() < deadline, "the slow revision never started"
            time.sleep(0.05)
        time.sleep(0.3)  # inside pg_sleep / time.sleep, DDL done, not committed
        migrator.send_signal(signal.SIGKILL)
        migrator.communicate()  # reaps it and closes the pipes
        assert migrator.returncode == -signal.SIGKILL

        # The shipped revisions committed one by one; nothing of the killed one remains.
        assert mypkg.current(db_url) == (HEAD,)
        schema = _tables_and_columns(db_url)
        assert "slow_partial" not in schema
        assert "slow_column" not in schema["my_table"]

        # The next run takes the lock (released with the dead session) and completes.
        started = time.monotonic()
        again = subprocess.run(
            [sys.executable, "-m", "mypkg", "--url", db_url, "upgrade", "--lock-timeout", "60"],
            cwd=source_copy, env=_copy_env(source_copy), capture_output=True, text=True, timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert "applied  5107dead0001" in again.stdout
        assert time.monotonic() - started < 60
        schema = _tables_and_columns(db_url)
        assert "slow_partial" in schema and "slow_column" in schema["my_table"]


@pytest.fixture
def held_lock(db_url: str):  # noqa: ANN201
    """Holds the migration lock of ``db_url`` from this process, as another migrator would."""
    url = resolve(db_url)
    path = url.sqlite_path
    if path is not None:
        with locking.sqlite_lock(path, url, timeout=5):
            yield
        return
    engine = database.create_engine(db_url)
    try:
        with engine.connect() as connection, locking.postgresql_lock(connection, url, timeout=5):
            yield
    finally:
        engine.dispose()


class TestLockTimeout:
    def test_second_migrator_gives_up_after_lock_timeout(self, db_url: str, held_lock: None, cli: Cli) -> None:
        started = time.monotonic()
        result = cli("--url", db_url, "upgrade", "--lock-timeout", "1")
        waited = time.monotonic() - started
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert "waiting up to 1s for the migration lock" in lines[0]
        # The holder named: its server process (no address for a unix-socket client), or
        # the lock file of the process holding it.
        holder = r"server process \d+" if db_url.startswith("postgresql") else r"another process \(lock file .+\)"
        assert re.search(f", held by {holder}$", lines[0]), lines[0]
        assert lines[-1].startswith("mypkg-migrate: error: could not take the migration lock")
        assert "nothing was changed" in lines[-1] and "Traceback" not in result.stderr
        assert waited >= 1
        assert mypkg.current(db_url) == ()

    def test_readers_do_not_wait_for_the_lock(self, db_url: str, held_lock: None, cli: Cli) -> None:
        result = cli("--url", db_url, "status")
        assert result.returncode == 1 and "pending:  6 revision(s)" in result.stdout

    def test_waiting_migrator_proceeds_when_the_lock_is_released(self, db_url: str, cli: Cli) -> None:
        url = resolve(db_url)
        path = url.sqlite_path
        release = threading.Event()

        def hold() -> None:
            if path is not None:
                with locking.sqlite_lock(path, url, timeout=5):
                    holding.set()
                    release.wait()
                return
            engine = database.create_engine(db_url)
            with engine.connect() as conn, locking.postgresql_lock(conn, url, timeout=5):
                holding.set()
                release.wait()
            engine.dispose()

        holding = threading.Event()
        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(30)
        # Released later than a loaded machine takes to start the migrator (it must wait).
        threading.Timer(3.0, release.set).start()
        result = cli("--url", db_url, "upgrade", "--lock-timeout", "30")
        holder.join()
        assert result.returncode == 0, result.stderr
        assert "waiting up to 30s for the migration lock" in result.stderr
        assert "applied  " in result.stdout
        assert mypkg.current(db_url) == (HEAD,)

    def test_a_replica_at_head_does_not_wait_for_the_lock(self, db_url: str, cli: Cli) -> None:
        """The no-op answer needs no lock: replicas starting during a long unrelated
        lock hold (a stamp, a backup) are not held up when there is nothing to do."""
        mypkg.upgrade(db_url)
        url = resolve(db_url)
        path = url.sqlite_path
        engine = database.create_engine(db_url)
        with contextlib.ExitStack() as stack:
            if path is not None:
                stack.enter_context(locking.sqlite_lock(path, url, timeout=5))
            else:
                conn = stack.enter_context(engine.connect())
                stack.enter_context(locking.postgresql_lock(conn, url, timeout=5))
            result = cli("--url", db_url, "upgrade", "--lock-timeout", "1")
        engine.dispose()
        assert result.returncode == 0, result.stderr
        assert "nothing to do" in result.stdout and result.stderr == ""


@pytest.mark.usefixtures("pg_server")
class TestStatementLockTimeout:
    """A revision that needs ACCESS EXCLUSIVE while an application transaction reads."""

    BEFORE_ALTER = "1c639967c1b5"  # next: cdc55a093c1f alters my_table

    def _reader(self, postgresql_url: str):  # noqa: ANN202
        engine = database.create_engine(postgresql_url)
        connection = engine.connect()
        connection.execute(sa.text("SELECT count(*) FROM my_table"))  # ACCESS SHARE, held
        return engine, connection

    def test_retries_are_bounded_and_the_application_is_not_stalled(
        self, postgresql_url: str, cli: Cli
    ) -> None:
        mypkg.upgrade(postgresql_url, self.BEFORE_ALTER)
        engine, reader = self._reader(postgresql_url)
        app_queries: list[str] = []

        def application() -> None:
            # While the migrator retries, the application's own queries keep running:
            # without lock_timeout they would queue behind its ACCESS EXCLUSIVE request.
            time.sleep(1.0)
            app_engine = database.create_engine(postgresql_url)
            with app_engine.connect() as app:
                app.execute(sa.text("SET statement_timeout = '3s'"))
                app.execute(sa.text("SELECT count(*) FROM my_table"))
                app_queries.append("ok")
            app_engine.dispose()

        app_thread = threading.Thread(target=application)
        app_thread.start()
        try:
            result = cli("--url", postgresql_url, "upgrade", "--statement-lock-timeout", "0.5")
        finally:
            app_thread.join()
            reader.close()
            engine.dispose()
        assert app_queries == ["ok"]
        assert result.returncode == 1
        # Each retry names the revision rolled back, and the pauses double: 0.5, 1, 2 s.
        retries = [line for line in result.stderr.splitlines() if "was rolled back; retry" in line]
        assert [line.split(": ", 1)[-1] for line in retries] == [
            f"cdc55a093c1f waited over 0.5s for a table lock and was rolled back; retry {n} of 3 in {pause}"
            for n, pause in ((1, "0.5s"), (2, "1s"), (3, "2s"))]
        error = result.stderr.strip().splitlines()[-1]
        assert "revision cdc55a093c1f" in error and "LockNotAvailable" in error
        assert mypkg.current(postgresql_url) == (self.BEFORE_ALTER,)

    def test_no_set_local_is_sent_inside_an_autocommit_block(
        self, pg_server, postgresql_url: str, cli: Cli  # noqa: ANN001
    ) -> None:
        """The last revision builds its index CONCURRENTLY, in an autocommit block: there is no
        transaction there for SET LOCAL to scope, and PostgreSQL would warn on every statement."""
        log = pg_server.root / "log"
        seen = log.stat().st_size
        result = cli("--url", postgresql_url, "upgrade", "--statement-lock-timeout", "5")
        assert result.returncode == 0, result.stderr
        with log.open(encoding="utf-8", errors="replace") as handle:
            handle.seek(seen)
            written = handle.read()
        assert "SET LOCAL can only be used in transaction blocks" not in written
        assert mypkg.current(postgresql_url) == (HEAD,)

    def test_a_retried_relative_downgrade_goes_no_further_than_asked(self, postgresql_url: str, cli: Cli) -> None:
        """downgrade -2 from head: the first revision commits, the second (78a2efaef9ac drops a
        constraint of my_table) waits for a reader and is retried; the retry still ends two
        revisions below head, not two below where it resumed."""
        mypkg.upgrade(postgresql_url)
        engine, reader = self._reader(postgresql_url)
        threading.Timer(2.5, reader.close).start()  # after the first attempt gave up
        try:
            result = cli("--url", postgresql_url, "downgrade", "-2", "--statement-lock-timeout", "0.5")
        finally:
            engine.dispose()
        assert result.returncode == 0, result.stderr
        assert "78a2efaef9ac waited over 0.5s for a table lock and was rolled back; retry 1 of 3" in result.stderr
        assert mypkg.current(postgresql_url) == (REVISIONS[-3],)

    def test_a_retry_succeeds_once_the_reader_finishes(self, postgresql_url: str, cli: Cli) -> None:
        mypkg.upgrade(postgresql_url, self.BEFORE_ALTER)
        engine, reader = self._reader(postgresql_url)
        # The reader goes once the first attempt has given up, as the migrator tells it (not
        # after a fixed time: on a loaded machine the migrator may not have started by then).
        lines: list[str] = []
        try:
            with subprocess.Popen([*cli.prefix, "--url", postgresql_url, "--log-format", "json", "upgrade",
                                   "--statement-lock-timeout", "0.5"], cwd=cli.cwd, env=cli.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
                assert process.stderr is not None
                for line in process.stderr:
                    lines.append(line)
                    if '"revision.retry"' in line and not reader.closed:
                        reader.close()
                process.wait(timeout=120)
        finally:
            engine.dispose()
        assert process.returncode == 0, "".join(lines)
        # Told as events (docs/observability.md): the revision started, rolled back for a retry, started again, applied.
        told = [json.loads(line) for line in lines]
        retries = [event for event in told if event["event"] == "revision.retry"]
        assert [(r["attempt"], r["attempts"], r["pause"]) for r in retries] == [(1, 3, 0.5), (2, 3, 1.0)][:len(retries)]
        assert retries and all("table lock" in r["reason"] for r in retries)
        retried = retries[0]["revision"]
        steps = [e["event"] for e in told if e["event"].startswith("revision.") and e["revision"] == retried]
        assert steps == ["revision.start", "revision.retry"] * len(retries) + ["revision.start", "revision.applied"]
        assert mypkg.current(postgresql_url) == (HEAD,)
