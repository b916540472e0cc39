"""Migrating through a transaction pooler with the lease lock (``--lock lease``): a real
pgbouncer in transaction pooling with a small pool; concurrent migrators, a migrator
SIGKILLed holding the lease, one SIGSTOPped past its lease while another takes over
(fenced out when it wakes), an index built CONCURRENTLY through the pooler, the lease
and the advisory lock excluding each other, the waiting message naming the holder."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import mypkg
from mypkg.migrate.database import locks
from tests.conftest import command_prefix, run_at_once
from tests.history import histories
from tests.servers.pgbouncer import PgBouncer
from tests.servers.postgresql import PostgresServer, database_name

REVISIONS = [rev.revision for rev in mypkg.history()]
HEAD = REVISIONS[-1]
MIGRATORS = 8
ROUNDS = 5


@pytest.fixture(scope="module")
def bouncer(pg_server: PostgresServer) -> Iterator[PgBouncer]:
    running = PgBouncer(pg_server, "transaction", pool_size=3).start()
    try:
        yield running
    finally:
        running.stop()


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, **extra}


def direct(server: PostgresServer, url: str) -> psycopg.Connection:
    return psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=database_name(url), autocommit=True)


def ledger_counts(server: PostgresServer, url: str) -> collections.Counter:
    with direct(server, url) as connection:
        return collections.Counter(row[0] for row in connection.execute(
            "SELECT revision FROM mypkg_migration_ledger WHERE outcome = 'applied'"))


def leftovers(server: PostgresServer, url: str) -> tuple[int, int]:
    """(lease rows, advisory locks) left on the database."""
    with direct(server, url) as connection:
        rows = connection.execute("SELECT count(*) FROM mypkg_migration_lock").fetchone()[0]
        advisory = connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
    return rows, advisory


def test_concurrent_migrators_all_succeed_through_transaction_pooling(bouncer: PgBouncer,
                                                                      pg_server: PostgresServer) -> None:
    figures: collections.Counter = collections.Counter()
    for _ in range(ROUNDS):
        url = pg_server.create_database()
        try:
            command = [*command_prefix(), "--url", bouncer.url(url), "--lock", "lease", "upgrade",
                       "--lock-timeout", "120"]
            results = run_at_once(command, MIGRATORS, env=clean_env())
            for result in results:
                assert result.returncode == 0, result.stderr
                figures["exit 0"] += 1
            applied = ledger_counts(pg_server, url)
            assert list(applied) == REVISIONS and set(applied.values()) == {1}, applied
            figures["applied twice"] += sum(count - 1 for count in applied.values())
            # Each revision's "applied" line printed by exactly one migrator.
            printed = collections.Counter(line.split()[1] for r in results for line in r.stdout.splitlines()
                                          if line.startswith("applied "))
            assert printed == collections.Counter(REVISIONS)
            rows, advisory = leftovers(pg_server, url)
            assert (rows, advisory) == (0, 0)
            figures["locks left"] += rows + advisory
            # Nothing session-scoped stayed on the pooled server sessions.
            sessions = [psycopg.connect(bouncer.url(url), autocommit=False) for _ in range(bouncer.pool_size)]
            try:
                seen = {tuple(c.execute("SELECT current_setting('lock_timeout'), current_setting('search_path')")
                              .fetchone()) for c in sessions}
            finally:
                for c in sessions:
                    c.close()
            assert seen == {("0", '"$user", public')}
        finally:
            pg_server.drop_database(url)
    print(f"pgbouncer transaction pooling (pool of {bouncer.pool_size}), {ROUNDS} rounds of {MIGRATORS} "
          f"--lock lease: {dict(figures)}")
    assert figures["exit 0"] == ROUNDS * MIGRATORS


SLOW = "op.create_table('slow', sa.Column('id', sa.Integer, primary_key=True))\nop.execute('SELECT pg_sleep({seconds})')"


def shipped_and(root: Path, extra: histories.Script) -> Path:
    """A checkout with the shipped history and one more revision after its head."""
    project = histories.project_with(root, [])
    versions = project / "alembic" / "versions"
    for script in (Path(mypkg.__file__).parent.parent / "alembic" / "versions").glob("*.py"):
        (versions / script.name).write_text(script.read_text())
    (versions / extra.filename).write_text(extra.text)
    return project


def slow_project(root: Path, seconds: float) -> Path:
    """The shipped history and one more revision that sleeps on the server (a long index build, say)."""
    return shipped_and(root, histories.script(
        "zz_slow.py", "51000000051f", HEAD, "slow", SLOW.format(seconds=seconds), "op.drop_table('slow')"))


def start(project: Path, url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mypkg", "--url", url, "--lock", "lease", *args, "upgrade",
                             "--lock-timeout", "60"], cwd=project, env=clean_env(PYTHONPATH=str(project)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def sleeping(server: PostgresServer, url: str) -> bool:
    with direct(server, url) as connection:
        return bool(connection.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                                       "AND state = 'active'").fetchone()[0])


def test_a_killed_holders_lease_is_taken_over_once_it_runs_out(tmp_path: Path, bouncer: PgBouncer,
                                                                pg_server: PostgresServer) -> None:
    project = slow_project(tmp_path / "project", 30)
    url = pg_server.create_database()
    try:
        pooled = bouncer.url(url)
        first = start(project, pooled, "--lease", "3")
        wait_for(lambda: sleeping(pg_server, url))
        killed_at = time.monotonic()
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        with direct(pg_server, url) as connection:
            connection.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'")
        (project / "alembic" / "versions" / "zz_slow.py").write_text(
            (project / "alembic" / "versions" / "zz_slow.py").read_text().replace("pg_sleep(30)", "pg_sleep(0)"))
        second = start(project, pooled, "--lease", "3")
        out, err = second.communicate(timeout=120)
        waited = time.monotonic() - killed_at
        assert second.returncode == 0, err
        assert "held by mypkg-migrate on" in err and "(lease expires in" in err  # the holder, named
        assert "51000000051f" in out
        assert waited >= 2.5  # the dead holder's lease ran out first
        assert ledger_counts(pg_server, url)["51000000051f"] == 1
        assert leftovers(pg_server, url) == (0, 0)
    finally:
        pg_server.drop_database(url)


def test_a_migrator_paused_past_its_lease_is_fenced_out_when_it_wakes(tmp_path: Path, bouncer: PgBouncer,
                                                                       pg_server: PostgresServer) -> None:
    """Paused (SIGSTOP) while its revision sleeps on the server, past its lease: another
    takes the lease over and waits behind the paused revision's locks; woken, the paused
    one reaches its commit, finds the lease someone else's, rolls back and exits 1 with one
    line; the other applies the revision, once."""
    project = slow_project(tmp_path / "project", 1)
    url = pg_server.create_database()
    try:
        pooled = bouncer.url(url)
        paused = start(project, pooled, "--lease", "2")
        wait_for(lambda: sleeping(pg_server, url))
        paused.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3.5)  # its heartbeat stopped with it: the lease runs out
            other = start(project, pooled, "--lease", "2")
            with direct(pg_server, url) as connection:
                wait_for(lambda: connection.execute(
                    "SELECT owner IS NOT NULL AND holder NOT LIKE %s FROM mypkg_migration_lock",
                    (f"%process {paused.pid}",)).fetchone() == (True,))
            time.sleep(0.5)
        finally:
            paused.send_signal(signal.SIGCONT)
        out, err = paused.communicate(timeout=120)
        other_out, other_err = other.communicate(timeout=120)
        assert paused.returncode == 1, (out, err)
        (line,) = err.strip().splitlines()[-1:]
        assert "the migration lease ran out and another migrator took it over" in line
        assert "Traceback" not in err
        assert other.returncode == 0, other_err
        # The paused one started it (its "applying" line); only the other applied it.
        assert "applied  51000000051f" in other_out and "applied  51000000051f" not in out
        assert ledger_counts(pg_server, url)["51000000051f"] == 1
        assert mypkg.current(url) == ("51000000051f",)
        assert leftovers(pg_server, url) == (0, 0)
    finally:
        pg_server.drop_database(url)


CONCURRENTLY = """
with op.get_context().autocommit_block():
    op.create_index("ix_note_body", "note", ["body"], postgresql_concurrently=True)
"""


def test_an_index_built_concurrently_through_the_pooler(tmp_path: Path, bouncer: PgBouncer,
                                                        pg_server: PostgresServer) -> None:
    project = shipped_and(tmp_path / "project", histories.script(
        "zz_concurrently.py", "c0ncurrent01", HEAD, "concurrently", CONCURRENTLY,
        'op.drop_index("ix_note_body", table_name="note")'))
    url = pg_server.create_database()
    try:
        done = start(project, bouncer.url(url))
        out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
        with direct(pg_server, url) as connection:
            valid = connection.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_note_body'::regclass"
                                       ).fetchone()
        assert valid == (True,)
        assert mypkg.current(url) == ("c0ncurrent01",)
        assert leftovers(pg_server, url) == (0, 0)
        # Reads through the pooler: status --wait, a no-op upgrade (the fast path's own run through
        # pgbouncer: tests/fast/test_fastpath_urls.py).
        env = clean_env(PYTHONPATH=str(project))
        waited = subprocess.run([sys.executable, "-m", "mypkg", "--url", bouncer.url(url), "status", "--wait", "5"],
                                cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert waited.returncode == 0, waited.stderr
        again = subprocess.run([sys.executable, "-m", "mypkg", "--url", bouncer.url(url), "upgrade"],
                               cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "nothing to do, at c0ncurrent01" in again.stdout
    finally:
        pg_server.drop_database(url)


def test_lease_and_advisory_migrators_exclude_each_other(pg_server: PostgresServer) -> None:
    """On a direct connection, four migrators take the advisory lock and four the lease,
    all at once: each revision is applied once, whoever applies it."""
    import threading

    for _ in range(2):
        url = pg_server.create_database()
        try:
            outcomes: list[subprocess.CompletedProcess[str]] = []

            def group(mode: str) -> None:
                outcomes.extend(run_at_once([*command_prefix(), "--url", url, "--lock", mode, "upgrade",
                                             "--lock-timeout", "120"], 4, env=clean_env()))

            threads = [threading.Thread(target=group, args=(mode,)) for mode in ("advisory", "lease")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(outcomes) == 8
            assert all(r.returncode == 0 for r in outcomes), [r.stderr for r in outcomes]
            applied = ledger_counts(pg_server, url)
            assert list(applied) == REVISIONS and set(applied.values()) == {1}, applied
            assert leftovers(pg_server, url) == (0, 0)
        finally:
            pg_server.drop_database(url)


def test_migrators_creating_the_lease_table_at_the_same_moment_all_find_it(pg_server: PostgresServer) -> None:
    """The lease table is created before any lock is held (it is the lock): eight migrators
    on a fresh database create it at the same moment. One creates it; the others wait for
    its transaction and find it, whether PostgreSQL tells them by a unique violation in its
    catalog or by "type ... already exists" (the table's row type)."""
    import threading

    from mypkg.migrate.database import lease
    from mypkg.migrate.database.connections import create_engine

    for _ in range(5):
        url = pg_server.create_database()
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"), pool_size=8)
        try:
            start, errors = threading.Barrier(8), []

            def create() -> None:
                with engine.connect() as connection:
                    start.wait(timeout=30)
                    try:
                        lease.ensure_table(connection, None)
                    except Exception as exc:  # noqa: BLE001 - the test reports every one
                        errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])

            threads = [threading.Thread(target=create) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert errors == []
        finally:
            engine.dispose()
            pg_server.drop_database(url)


def test_no_lease_while_a_session_holds_the_advisory_lock_and_none_made_on_a_direct_connection(
        bouncer: PgBouncer, pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    try:
        # A client of the pooler holds the advisory lock on a pooled session (an older
        # migrator, say): the lease waits for it, even when handed that very session.
        holder = psycopg.connect(bouncer.url(url), autocommit=True)
        try:
            assert holder.execute("SELECT pg_try_advisory_lock(%s)", (locks.ADVISORY_LOCK_KEY,)).fetchone()[0]
            refused = subprocess.run([*command_prefix(), "--url", bouncer.url(url), "--lock", "lease", "upgrade",
                                      "--lock-timeout", "1"], capture_output=True, text=True, env=clean_env())
        finally:
            with direct(pg_server, url) as connection:
                connection.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'")
            holder.close()
        assert refused.returncode == 1
        assert "held by a migrator holding the advisory lock" in refused.stderr
        assert "nothing was changed" in refused.stderr
        assert mypkg.current(url) == ()
    finally:
        pg_server.drop_database(url)
    # Direct: the advisory lock, as before; the lease table is never made.
    url = pg_server.create_database()
    try:
        direct_run = subprocess.run([*command_prefix(), "--url", url, "upgrade"], capture_output=True, text=True,
                                    env=clean_env())
        assert direct_run.returncode == 0, direct_run.stderr
        with direct(pg_server, url) as connection:
            assert connection.execute("SELECT to_regclass('mypkg_migration_lock')").fetchone() == (None,)
    finally:
        pg_server.drop_database(url)


def test_a_lock_whose_pooled_session_stays_busy_is_given_back_within_the_lock_timeout_or_named(
        bouncer: PgBouncer, pg_server: PostgresServer) -> None:
    """Through a transaction pooler, the advisory lock sits on one pooled server session.
    When the application's transaction occupies that very session while the migrator gives
    the lock back, the migrator's tries land elsewhere: it keeps trying no longer than its
    lock timeout, then says which session still holds the lock and how to end it. Once that
    session is idle again, giving back works (the session is ended)."""
    from mypkg.migrate.database import connections, target

    url = pg_server.create_database()
    pooled = bouncer.url(url)
    db = target.resolve(pooled)
    said: list[str] = []
    application = None
    try:
        with connections.connect(db, will_write=True) as connection:
            with locks.postgresql_lock(connection, db, 2.0, said.append) as session:
                # The pooler hands the most recently used server session (the lock's) to
                # the next transaction: the application's, which stays open.
                application = psycopg.connect(pooled, autocommit=False)
                assert application.execute("SELECT pg_backend_pid()").fetchone()[0] == session.pid
                started = time.monotonic()
            took = time.monotonic() - started
            assert 1.9 < took < 8, took
            (line,) = said
            assert f"could not give the migration lock back: server session {session.pid} stayed busy" in line
            assert f"for 2s and holds it until that session ends (SELECT pg_terminate_backend({session.pid})" in line
            assert leftovers_advisory(pg_server, url) == [session.pid]
            application.rollback()  # the session is idle again: the next try ends it
            assert locks._release(connection, session.pid, session.key, 2.0)
        assert leftovers_advisory(pg_server, url) == []
    finally:
        if application is not None:
            application.close()
        pg_server.drop_database(url)


def test_giving_back_a_lock_whose_idle_session_is_elsewhere_returns_once_that_session_is_gone(
        pg_server: PostgresServer) -> None:
    """The tries land in another session than the lock's (as through a pooler), and the
    holding session is idle: it is ended, and the release returns only once it has ended
    (PostgreSQL 14+ waits for it), so the next migrator finds the lock free at once, even
    when that session is slow to end (here it first drops a few hundred temporary tables)."""
    from mypkg.migrate.database import connections, target

    url = pg_server.create_database()
    holder = direct(pg_server, url)
    try:
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (locks.ADVISORY_LOCK_KEY,)).fetchone()[0]
        holder.execute("DO $$ BEGIN FOR i IN 1..400 LOOP EXECUTE format('CREATE TEMP TABLE t%s (id int)', i); "
                       "END LOOP; END $$")
        db = target.resolve(url)
        with connections.connect(db, will_write=True) as connection:
            assert locks._release(connection, holder.info.backend_pid, locks.ADVISORY_LOCK_KEY, 10.0)
            left = connection.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").scalar()
            connection.rollback()
        assert left == 0
        with pytest.raises(psycopg.OperationalError):  # its session was ended
            holder.execute("SELECT 1")
    finally:
        holder.close()
        pg_server.drop_database(url)


def test_a_holder_whose_lease_ran_out_is_named_as_expired_not_with_a_countdown(pg_server: PostgresServer) -> None:
    """A waiter names the lease's holder: with the seconds left while it runs, with the moment
    it ran out once it has (a killed holder's row, until the next try clears it)."""
    import re

    from mypkg.migrate.database import connections, lease, target

    url = pg_server.create_database()
    try:
        db = target.resolve(url)
        with connections.connect(db, will_write=True) as connection:
            lease.ensure_table(connection, None)
            connection.exec_driver_sql(
                "INSERT INTO mypkg_migration_lock VALUES ('migrate', 'o', 'mypkg-migrate on web-7, process 41', "
                "clock_timestamp() - interval '2 minutes', clock_timestamp() - interval '30 seconds')")
            connection.commit()
            ran_out = lease.describe(connection)
            connection.exec_driver_sql("UPDATE mypkg_migration_lock SET expires = clock_timestamp() + interval '40 seconds'")
            connection.commit()
            running = lease.describe(connection)
        assert re.fullmatch(r"mypkg-migrate on web-7, process 41 since [-0-9]{10} [:0-9]{8} UTC "
                            r"\(lease expired at [:0-9]{8} UTC\)", ran_out), ran_out
        assert re.fullmatch(r"mypkg-migrate on web-7, process 41 since .* UTC \(lease expires in (39|40)s\)", running), running
    finally:
        pg_server.drop_database(url)


def test_a_migration_session_that_died_holding_the_lock_leaves_nothing_to_give_back(pg_server: PostgresServer) -> None:
    """The server ended the migrator's own session while it held the lock (a failover, an
    administrator's pg_terminate_backend): the lock went with it. Giving it back finds no
    session to talk to, which is no error: the block ends as it would have."""
    from mypkg.migrate.database import connections, target

    url = pg_server.create_database()
    try:
        db = target.resolve(url)
        with connections.connect(db, will_write=True) as connection:
            with locks.postgresql_lock(connection, db, 2.0) as session:
                with direct(pg_server, url) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s, 5000)", (session.pid,))
            assert leftovers_advisory(pg_server, url) == []
    finally:
        pg_server.drop_database(url)


def leftovers_advisory(server: PostgresServer, url: str) -> list[int]:
    with direct(server, url) as connection:
        return [row[0] for row in connection.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory'")]


def test_lease_is_refused_where_it_means_nothing(tmp_path: Path) -> None:
    done = subprocess.run([*command_prefix(), "--url", f"sqlite:///{tmp_path / 'a.db'}", "--lock", "lease", "upgrade"],
                          capture_output=True, text=True, env=clean_env())
    assert done.returncode == 2
    assert done.stderr.strip() == ("mypkg-migrate: error: --lock lease is for PostgreSQL behind a transaction pooler; "
                                   "sqlite takes its own lock (leave --lock out)")
    bad = subprocess.run([*command_prefix(), "status"], capture_output=True, text=True, cwd=tmp_path,
                         env=clean_env(MYPKG_LOCK="leases"))
    assert bad.returncode == 2 and "$MYPKG_LOCK must be one of auto, advisory, lease, not 'leases'" in bad.stderr
    never = subprocess.run([*command_prefix(), "status"], capture_output=True, text=True, cwd=tmp_path,
                           env=clean_env(MYPKG_LEASE="0"))
    assert never.returncode == 2 and "$MYPKG_LEASE must be a positive number of seconds, not '0'" in never.stderr
    flag = subprocess.run([*command_prefix(), "--lease", "0", "status"], capture_output=True, text=True, cwd=tmp_path,
                          env=clean_env())
    assert flag.returncode == 2 and flag.stderr.count("\n") == 1


def test_a_live_migrator_keeps_its_lease_through_a_revision_longer_than_the_lease(
        tmp_path: Path, bouncer: PgBouncer, pg_server: PostgresServer) -> None:
    """The heartbeat renews the lease while a revision runs four times its length: the
    second migrator waits (naming the holder, the lease never expired), then finds nothing
    to do; the first commits."""
    project = slow_project(tmp_path / "project", 6)
    url = pg_server.create_database()
    try:
        pooled = bouncer.url(url)
        first = start(project, pooled, "--lease", "1.5")
        wait_for(lambda: sleeping(pg_server, url))
        time.sleep(2.5)  # past the lease: only the heartbeat keeps it
        with direct(pg_server, url) as connection:
            left = connection.execute("SELECT expires > clock_timestamp() FROM mypkg_migration_lock").fetchone()
        assert left == (True,)
        second = start(project, pooled, "--lease", "1.5")
        out, err = first.communicate(timeout=120)
        second_out, second_err = second.communicate(timeout=120)
        assert first.returncode == 0, err
        assert second.returncode == 0, second_err
        assert "51000000051f" in out and "nothing to do, at 51000000051f" in second_out
        assert "(lease expires in" in second_err and "expired at" not in second_err
        assert ledger_counts(pg_server, url)["51000000051f"] == 1
        assert leftovers(pg_server, url) == (0, 0)
    finally:
        pg_server.drop_database(url)
