"""Behind a real pgbouncer: in transaction pooling the default lock (``--lock auto``) sees
the pooler and goes on under a lease (tests/runtime/test_lease.py), ``--lock advisory``
refuses, naming the way out; nothing is applied twice, no lock is left behind, no setting
leaks into the application's sessions. In session pooling, migrations run as on a direct
connection."""

from __future__ import annotations

import collections
import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

import mypkg
from mypkg.migrate.database import locks
from tests.conftest import command_prefix, run_at_once
from tests.servers.pgbouncer import PgBouncer
from tests.servers.postgresql import PostgresServer, database_name

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]
MIGRATORS = 4
ROUNDS = 3


@pytest.fixture(scope="module", params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[PgBouncer]:
    running = PgBouncer(pg_server, request.param).start()
    try:
        yield running
    finally:
        running.stop()


def direct(server: PostgresServer, url: str) -> psycopg.Connection:
    return psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=database_name(url), autocommit=True)


def migrate_at_once(url: str, *extra: str) -> list[subprocess.CompletedProcess[str]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    command = [*command_prefix(), "--url", url, "upgrade", "--lock-timeout", "60", "--statement-lock-timeout", "5"]
    return run_at_once([*command, *extra], MIGRATORS, env=environment)


def pooled_settings(url: str, sessions: int) -> set[tuple[str, str]]:
    """lock_timeout and client_connection_check_interval as application sessions see them:
    as many clients as the pool has server sessions, each holding a transaction open, so
    every pooled server session is looked at."""
    connections = [psycopg.connect(url, autocommit=False) for _ in range(sessions)]
    try:
        seen = set()
        for connection in connections:
            row = connection.execute("SELECT current_setting('lock_timeout'), "
                                     "current_setting('client_connection_check_interval')").fetchone()
            seen.add(tuple(row))
        return seen
    finally:
        for connection in connections:
            connection.close()


def test_concurrent_upgrades_through_the_pooler(bouncer: PgBouncer, pg_server: PostgresServer) -> None:
    figures = collections.Counter()
    for _ in range(ROUNDS):
        url = pg_server.create_database()
        try:
            pooled = bouncer.url(url)
            results = migrate_at_once(pooled)
            for result in results:
                assert result.returncode in (0, 1), result.stderr
                assert "Traceback" not in result.stderr
                if result.returncode == 1:
                    (line,) = result.stderr.strip().splitlines()[-1:]
                    assert bouncer.pool_mode == "transaction", line
                    if "cannot connect" in line and ("server connection closed" in line or "received 2 results" in line):
                        # Known, about one run in ten (also before the schema work): another
                        # migrator's lock cleanup ended the idle pooled server session this one
                        # was handed next. Still one line, exit 1, nothing applied; the lease
                        # lock of issue 28 removes the cleanup that ends sessions.
                        figures["session ended by another's cleanup"] += 1
                        continue
                    figures["refused"] += 1
                    # A refusal names transaction pooling and the way out, nothing else.
                    assert "pooled per transaction" in line and "MYPKG_MIGRATION_URL" in line, line
                else:
                    figures["succeeded"] += 1
            with direct(pg_server, url) as connection:
                # Every migrator of a round may have been refused before anything was created.
                has = {name: connection.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]
                       for name in ("mypkg_migration_ledger", "alembic_version")}
                applied = collections.Counter(
                    row[0] for row in connection.execute(
                        "SELECT revision FROM mypkg_migration_ledger WHERE outcome = 'applied'")
                ) if has["mypkg_migration_ledger"] else collections.Counter()
                current = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")
                           ] if has["alembic_version"] else []
                locks_left = connection.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s::oid",
                    (locks.ADVISORY_LOCK_KEY & 0xFFFFFFFF,),
                ).fetchone()[0]
            assert set(applied.values()) <= {1}, applied  # nothing applied twice
            assert list(applied) == REVISIONS[: len(applied)]
            assert current == ([REVISIONS[len(applied) - 1]] if applied else [])
            assert locks_left == 0
            figures["locks left"] += locks_left
            leaked = pooled_settings(pooled, bouncer.pool_size) - {("0", "0")}
            assert leaked == set()
            # The way out: a direct URL for migrations, the pooled one kept for the application.
            done = subprocess.run([*command_prefix(), "upgrade"], capture_output=True, text=True, timeout=180,
                                  env={**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")},
                                       "MYPKG_DATABASE_URL": pooled, "MYPKG_MIGRATION_URL": url})
            assert done.returncode == 0, done.stderr
            assert mypkg.current(url) == (HEAD,)
        finally:
            pg_server.drop_database(url)
    print(f"pgbouncer {bouncer.pool_mode} pooling, {ROUNDS} rounds of {MIGRATORS}: {dict(figures)}")
    # Seen at the lock or at a revision's commit, the pooler sends the default lock to a lease.
    assert figures["refused"] == 0
    if bouncer.pool_mode == "session":
        assert figures["succeeded"] == ROUNDS * MIGRATORS


@pytest.fixture
def one_session_bouncer(pg_server: PostgresServer) -> Iterator[PgBouncer]:
    """Transaction pooling over a single server session: every client shares it."""
    running = PgBouncer(pg_server, "transaction", pool_size=1).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_lock_taken_through_another_session_is_refused_not_shared(
    one_session_bouncer: PgBouncer, pg_server: PostgresServer
) -> None:
    """Transaction pooling hands a second client the very server session that holds the
    lock; a session-level lock would let it in twice. It is refused instead."""
    url = pg_server.create_database()
    try:
        pooled = one_session_bouncer.url(url)
        # One pooled server session at a time: the holder's and the second client's are the same.
        holder = psycopg.connect(pooled, autocommit=True)
        try:
            assert holder.execute("SELECT pg_try_advisory_lock(%s)", (locks.ADVISORY_LOCK_KEY,)).fetchone()[0]
            result = subprocess.run([*command_prefix(), "--url", pooled, "--lock", "advisory", "upgrade",
                                     "--lock-timeout", "2"], capture_output=True, text=True, timeout=120,
                                    env={k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")})
            auto = subprocess.run([*command_prefix(), "--url", pooled, "upgrade", "--lock-timeout", "2"],
                                  capture_output=True, text=True, timeout=120,
                                  env={k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")})
        finally:
            with direct(pg_server, url) as connection:
                connection.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'")
            holder.close()
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert "this server session already holds the migration lock, taken by another client" in line
        assert "pooled per transaction" in line and "nothing was changed" in line
        # The default goes for a lease, which waits for the advisory lock's holder, then gives up.
        assert auto.returncode == 1
        assert "going on under a lease lock" in auto.stderr or "taking a lease lock instead" in auto.stderr
        last = auto.stderr.strip().splitlines()[-1]
        assert "could not take the migration lock" in last and "a migrator holding the advisory lock" in last
        assert "nothing was changed" in last
        assert mypkg.current(url) == ()
    finally:
        pg_server.drop_database(url)


def test_a_tenants_search_path_never_stays_on_a_pooled_session(
    one_session_bouncer: PgBouncer, pg_server: PostgresServer
) -> None:
    """Reading a tenant through transaction pooling (the full path, whose every transaction
    sets the tenant's search path): the one server session every client shares keeps its
    own search path afterwards, so the next client's unqualified names are not the tenant's."""
    url = pg_server.create_database()
    try:
        assert mypkg.upgrade(f"{url}&schema=tenant_a").after == (HEAD,)
        pooled = one_session_bouncer.url(url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        for command in (["status"], ["check"], ["history", "--applied"]):
            result = subprocess.run([*command_prefix(), "--url", pooled, "--schema", "tenant_a", *command],
                                    capture_output=True, text=True, timeout=120, env={**env, "MYPKG_NO_FASTPATH": "1"})
            assert result.returncode == 0, (command, result.stderr)
        with psycopg.connect(pooled, autocommit=True) as other:  # the same server session, another client
            assert other.execute("SHOW search_path").fetchone()[0] == '"$user", public'
    finally:
        pg_server.drop_database(url)
