"""A database URL naming an async driver (``postgresql+asyncpg://``: the URL an asyncio
application already has in its settings) works as the sync one does: prefect's history runs
through asyncpg, and its raw SQL holds ``format('%I.%I', ...)``, a placeholder to every sync
PostgreSQL driver. The command and the Python API run their sync code in SQLAlchemy's greenlet
bridge (what ``AsyncConnection.run_sync`` does) on an event loop of their own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mypkg
from mypkg.migrate.errors import UsageError
from tests.history import histories
from tests.runtime.test_api import HEAD
from tests.servers.postgresql import PostgresServer, client


def as_async(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env["PYTHONPATH"] = str(root)
    return subprocess.run([sys.executable, "-m", "mypkg", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_an_asyncpg_url_migrates_as_the_sync_one_does_raw_percent_signs_included(
        source_copy: Path, pg_server: PostgresServer) -> None:
    percent = histories.script(
        "9999_0bada5c00001_percent.py", "0bada5c00001", HEAD, "test only: raw SQL with percent signs",
        upgrade=('name = op.get_bind().exec_driver_sql("SELECT format(\'%I.%I\', \'public\', \'my_table\')").scalar()\n'
                 'op.execute(f"COMMENT ON TABLE {name} IS \'named by format\'")'),
        downgrade='op.execute("COMMENT ON TABLE my_table IS NULL")')
    (source_copy / "alembic" / "versions" / percent.filename).write_text(percent.text)
    by_async, by_sync = pg_server.create_database(), pg_server.create_database()
    try:
        up = run(source_copy, "--url", as_async(by_async), "upgrade")
        assert up.returncode == 0, up.stderr
        assert "applied  0bada5c00001" in up.stdout
        status = run(source_copy, "--url", as_async(by_async), "status", "--json")
        assert status.returncode == 0 and '"pending": []' in status.stdout, status.stdout + status.stderr
        comment = client(pg_server, "psql", by_async, "-Atc", "SELECT obj_description('my_table'::regclass)")
        assert comment.stdout.strip() == "named by format"
        # The same history through psycopg fails on the percent signs (the test's world is real).
        sync = run(source_copy, "--url", by_sync, "upgrade")
        assert sync.returncode == 1 and "0bada5c00001" in sync.stderr, sync.stderr
        down = run(source_copy, "--url", as_async(by_async), "downgrade", "base", "--yes")
        assert down.returncode == 0, down.stderr
        tables = client(pg_server, "psql", by_async, "-Atc",
                        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'my_table'")
        assert tables.stdout.strip() == "0"
    finally:
        pg_server.drop_database(by_async)
        pg_server.drop_database(by_sync)


def test_the_api_takes_an_asyncpg_url_and_says_how_to_call_it_from_a_running_loop(postgresql_url: str) -> None:
    url = as_async(postgresql_url)
    result = mypkg.upgrade(url)
    assert result.after == tuple(mypkg.heads()) and mypkg.status(url).at_head

    async def inside_the_applications_loop() -> None:
        with pytest.raises(UsageError, match=r"asyncio\.to_thread"):
            mypkg.status(url)
        # As the message says: in a thread of its own, the call runs its own loop.
        assert (await asyncio.to_thread(mypkg.status, url)).at_head

    asyncio.run(inside_the_applications_loop())


def test_plain_alembic_on_an_asyncpg_url_builds_what_the_runner_builds(source_copy: Path,
                                                                       pg_server: PostgresServer) -> None:
    """The authors' `alembic upgrade head` reads the same env.py: on the asyncio application's
    URL it failed with MissingGreenlet while the runner succeeded."""
    import shutil

    from tests.conftest import REPO

    shutil.copy(REPO / "alembic.ini", source_copy / "alembic.ini")
    by_alembic, by_runner = pg_server.create_database(), pg_server.create_database()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        env.update(PYTHONPATH=str(source_copy), MYPKG_DATABASE_URL=as_async(by_alembic))
        done = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=source_copy, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert run(source_copy, "--url", as_async(by_runner), "upgrade").returncode == 0

        def schema(url: str) -> str:
            dumped = client(pg_server, "pg_dump", url, "--schema-only", "--no-owner", "-T", "mypkg_migration_*")
            return "\n".join(line for line in dumped.stdout.splitlines() if not line.startswith(("\\restrict", "\\unr")))

        assert "CREATE TABLE" in schema(by_alembic) and schema(by_alembic) == schema(by_runner)
    finally:
        pg_server.drop_database(by_alembic)
        pg_server.drop_database(by_runner)


def test_a_fleet_of_schemas_on_an_asyncpg_url(source_copy: Path, postgresql_url: str) -> None:
    """``fleet upgrade --schemas`` lists the schemas and reads them in bulk through the
    URL's driver: both outside any command, they too run in the bridge."""
    url = as_async(postgresql_url)
    import sqlalchemy as sa

    engine = sa.create_engine(postgresql_url)
    with engine.begin() as connection:
        for number in (1, 2, 3):
            connection.exec_driver_sql(f"CREATE SCHEMA tenant_{number}")
    engine.dispose()
    up = run(source_copy, "--url", url, "fleet", "upgrade", "--schemas", "tenant_*")
    assert up.returncode == 0, up.stdout + up.stderr
    status = run(source_copy, "--url", url, "fleet", "status", "--schemas", "tenant_*", "--json")
    import json

    assert json.loads(status.stdout)["summary"]["at_head"] == 3, status.stdout + status.stderr


def test_a_checkpoint_replayed_on_and_proved_on_an_asyncpg_server(source_copy: Path, pg_server: PostgresServer) -> None:
    """``checkpoint --replay-on`` and ``--prove --replay-on`` read the server's catalog with
    raw SQL: its markers are the driver's ($1 for asyncpg), and the replay runs in the bridge."""
    import json

    scratch = pg_server.create_database()
    try:
        written = run(source_copy, "checkpoint", "78a2efaef9ac", "--replay-on", as_async(scratch))
        assert written.returncode == 0, written.stderr
        saved = json.loads((source_copy / "alembic" / "checkpoints" / "78a2efaef9ac.json").read_text())
        assert "postgresql" in saved["forms"]
        proved = run(source_copy, "checkpoint", "--prove", "--replay-on", as_async(scratch))
        assert proved.returncode == 0, proved.stdout + proved.stderr
        # A new database (a new tenant) through the checkpoint: its DDL is many commands.
        fresh = pg_server.create_database()
        try:
            up = run(source_copy, "--url", as_async(fresh), "upgrade")
            assert up.returncode == 0 and "checkpoint of" in up.stdout, up.stdout + up.stderr
        finally:
            pg_server.drop_database(fresh)
    finally:
        pg_server.drop_database(scratch)
