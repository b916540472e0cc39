"""The background worker throttled by a real streaming replica (``pg_basebackup -R`` of the
test server, on its own socket): with its replay paused mid-backfill the worker stops between
batches once the lag passes the bound, says so, and goes on when replay resumes, while an
application writes beside it without an error; a replica that cannot be read stops the work
(never unthrottled) within ``--max-wait``. A real MariaDB replica the same way."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.data.test_background import B, mig, project, scalar, start
from tests.servers.mariadb import MariaDBReplicated
from tests.servers.postgresql import PostgresReplica, PostgresServer, database_name


@pytest.fixture(scope="module")
def replica(pg_server: PostgresServer) -> Iterator[PostgresReplica]:
    running = PostgresReplica(pg_server).start()
    try:
        yield running
    finally:
        running.stop()


def on_replica(replica: PostgresReplica, url: str) -> str:
    return f"postgresql+psycopg://{replica.user}@/{database_name(url)}?host={replica.socket_dir}"


def replicated(replica: PostgresReplica, url: str, sql: str, expected: object, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with psycopg.connect(host=str(replica.socket_dir), user=replica.user, dbname=database_name(url)) as c:
                if c.execute(sql).fetchone()[0] == expected:
                    return
        except psycopg.Error:
            pass
        assert time.monotonic() < deadline, f"the replica never showed {sql} = {expected!r}"
        time.sleep(0.2)


def test_the_worker_waits_while_the_replica_lags_and_goes_on_when_it_catches_up(
        pg_server: PostgresServer, replica: PostgresReplica, postgresql_url: str, tmp_path: Path) -> None:
    url, rows = postgresql_url, 30000
    root = project(tmp_path / "project", rows, batch=300)
    assert mig(root, url, "upgrade", B).returncode == 0
    replicated(replica, url, "SELECT count(*) FROM note", rows)
    errors: list[str] = []
    stop = threading.Event()

    def application() -> None:  # writes a row every 20 ms, as the users of the site do
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as connection:
            connection.execute("CREATE TABLE visit (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
            while not stop.is_set():
                try:
                    connection.execute("INSERT INTO visit DEFAULT VALUES")
                except psycopg.Error as exc:
                    errors.append(str(exc))
                time.sleep(0.02)

    writer = threading.Thread(target=application)
    writer.start()
    log = tmp_path / "worker.log"
    worker = start(root, url, "--once", "--replica", on_replica(replica, url), "--max-replica-lag", "1",
                   "--pause", "0.05", "--poll", "0.2", log=log)
    try:
        deadline = time.monotonic() + 60
        while scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL") == 0:
            assert time.monotonic() < deadline and worker.poll() is None, log.read_text()
            time.sleep(0.1)
        replica.pause()
        time.sleep(2.5)  # past the 1 s bound, and a few polls
        held = scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL")
        time.sleep(2.5)
        assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL") == held < rows
        assert "waiting between batches: postgresql+psycopg://postgres@/" in log.read_text()
        assert " lags " in log.read_text() and "(the bound: 1s of lag)" in log.read_text()
        replica.resume()
        assert worker.wait(timeout=120) == 0, log.read_text()
    finally:
        stop.set()
        writer.join(timeout=30)
        worker.kill()
        worker.wait(timeout=30)
    assert "the replicas caught up: the backfill goes on" in log.read_text()
    assert log.read_text().count("waiting between batches") == 1  # said once, not at every poll
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NULL") == 0
    assert errors == []


def test_a_replica_that_cannot_be_read_stops_the_work_within_the_bound(
        pg_server: PostgresServer, postgresql_url: str, tmp_path: Path) -> None:
    url = postgresql_url
    root = project(tmp_path / "project", 3000)
    assert mig(root, url, "upgrade", B).returncode == 0
    nowhere = f"postgresql+psycopg://postgres@/app?host={tmp_path / 'no-server-here'}"
    began = time.monotonic()
    stopped = mig(root, url, "backfill", "run", "--once", "--replica", nowhere, "--max-replica-lag", "5",
                  "--max-wait", "1", "--poll", "0.2")
    assert stopped.returncode == 1 and 1.0 <= time.monotonic() - began < 30, stopped.stderr  # the bound, waited
    assert f"{nowhere} cannot be read (" in stopped.stderr
    assert stopped.stderr.count("waiting between batches") == 1  # five polls, one line
    assert stopped.stderr.strip().splitlines()[-1].startswith(
        "mypkg-migrate: error: stopped after waiting 1s for the replicas"), stopped.stderr
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL") == 0  # not one batch unthrottled
    # The primary given as a replica is no replica: waited for, never read as "no lag".
    primary = mig(root, url, "backfill", "run", "--once", "--replica", url, "--max-replica-lag", "5",
                  "--max-wait", "0.5")
    assert primary.returncode == 1 and "not a replica (pg_is_in_recovery() is false)" in primary.stderr
    # Read again at every poll, each failed read's connection closed: they never pile up.
    log = tmp_path / "primary.log"
    waiting = start(root, url, "--once", "--replica", url, "--max-replica-lag", "5", "--max-wait", "3",
                    "--poll", "0.05", log=log)
    sessions = []
    while waiting.poll() is None:
        sessions.append(scalar(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND pid <> pg_backend_pid()"))
        time.sleep(0.1)
    assert waiting.returncode == 1 and "not a replica" in log.read_text()
    assert 1 <= max(sessions) <= 3, sessions
    no_bound = mig(root, url, "backfill", "run", "--once", "--replica", url)
    assert no_bound.returncode == 2 and "--max-replica-lag" in no_bound.stderr


@pytest.fixture(scope="module")
def mariadb_pair() -> Iterator[MariaDBReplicated]:
    running = MariaDBReplicated().start()
    try:
        yield running
    finally:
        running.stop()


def test_on_mariadb_a_replica_whose_sql_thread_stopped_holds_the_work_until_it_runs_again(
        mariadb_pair: MariaDBReplicated, tmp_path: Path) -> None:
    """A real MariaDB replica (binary log replication over 127.0.0.1): with its SQL thread
    stopped its lag is unknown (``Seconds_Behind_Master`` NULL), so the worker waits and says
    so; started again, it catches up and the worker finishes."""
    url, rows = mariadb_pair.primary.create_database(), 20000
    name = url.split("?")[0].rsplit("/", 1)[-1]
    replica_url = mariadb_pair.replica.url(name)
    root = project(tmp_path / "project", rows, batch=300)
    assert mig(root, url, "upgrade", B).returncode == 0
    deadline = time.monotonic() + 30
    while True:
        try:
            if scalar(replica_url, "SELECT count(*) FROM note") == rows:
                break
        except Exception:  # noqa: BLE001 - not replicated yet
            pass
        assert time.monotonic() < deadline, "never replicated"
        time.sleep(0.2)
    log = tmp_path / "worker.log"
    worker = start(root, url, "--once", "--replica", replica_url, "--max-replica-lag", "1", "--pause", "0.05",
                   "--poll", "0.2", log=log)
    try:
        deadline = time.monotonic() + 60
        while scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL") == 0:
            assert time.monotonic() < deadline and worker.poll() is None, log.read_text()
            time.sleep(0.1)
        mariadb_pair.sql_thread(False)
        time.sleep(1.0)
        held = scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL")
        time.sleep(2.0)
        assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL") == held < rows
        assert "cannot be read (its lag is unknown (replay not started, or its SQL thread stopped))" in log.read_text()
        mariadb_pair.sql_thread(True)
        assert worker.wait(timeout=120) == 0, log.read_text()
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert "the replicas caught up: the backfill goes on" in log.read_text()
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NULL") == 0
