"""What orchestrators and shells do to a migrator: SIGTERM and SIGINT mid-revision, a
closed or full stdout, servers that never answer; and timings that include autocommit
blocks. Real processes, real SQLite files and the suite's PostgreSQL server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

import mypkg
from tests.conftest import command_prefix
from tests.runtime.test_concurrency import SLOW_REVISION, _copy_env, _tables_and_columns

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]


@pytest.mark.parametrize("signum, code, word", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                 (signal.SIGINT, 130, "interrupted")])
def test_a_signal_mid_revision_rolls_it_back_and_records_no_failure(
    signum: int, code: int, word: str, source_copy: Path, db_url: str, tmp_path: Path
) -> None:
    (source_copy / "alembic" / "versions" / "9999_5107dead0001_slow.py").write_text(SLOW_REVISION.format(parent=HEAD))
    marker = tmp_path / "half-way"
    migrator = subprocess.Popen(
        [sys.executable, "-m", "mypkg", "--url", db_url, "upgrade"], cwd=source_copy,
        env=_copy_env(source_copy, MYPKG_TEST_SLOW_MARKER=str(marker)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal or an orchestrator: a suite started in the background (`cmd &`,
        # nohup) hands its children SIGINT ignored, and then no program sees Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert migrator.poll() is None, migrator.communicate()
        assert time.monotonic() < deadline, "the slow revision never started"
        time.sleep(0.05)
    time.sleep(0.3)
    migrator.send_signal(signum)
    out, err = migrator.communicate(timeout=60)
    assert migrator.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "rolled back" in lines[0], err
    assert f"applied  {HEAD}" in out  # what committed before was reported
    assert mypkg.current(db_url) == (HEAD,)
    assert "slow_partial" not in _tables_and_columns(db_url)
    outcomes = [(row.revision, row.outcome) for row in mypkg.applied_history(db_url)]
    assert ("5107dead0001", "failed") not in outcomes and all(o != "failed" for _, o in outcomes)
    # The lock went with it: the next migrator does not wait.
    again = subprocess.run([sys.executable, "-m", "mypkg", "--url", db_url, "upgrade", "--lock-timeout", "5"],
                           cwd=source_copy, env=_copy_env(source_copy), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "waiting" not in again.stderr and "applied  5107dead0001" in again.stdout


def test_a_reader_that_leaves_does_not_stop_the_migration(db_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    command = " ".join([*command_prefix(), "--url", f"'{db_url}'", "upgrade"])
    result = subprocess.run(["bash", "-c", f"{command} | head -1; echo \"exit ${{PIPESTATUS[0]}}\""],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    first, status = result.stdout.strip().splitlines()
    assert first.startswith(f"applying {REVISIONS[0]}")  # the reader left after the first line
    assert status == "exit 0", result.stderr
    assert result.stderr == ""
    assert mypkg.current(db_url) == (HEAD,)
    applied = [row.revision for row in mypkg.applied_history(db_url) if row.outcome == "applied"]
    assert applied == REVISIONS


def test_a_full_stdout_does_not_stop_the_migration(db_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    with open("/dev/full", "w") as full:
        result = subprocess.run([*command_prefix(), "--url", db_url, "upgrade"], cwd=tmp_path, env=env,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "cannot write to stdout" in line and "carrying on" in line
    assert mypkg.current(db_url) == (HEAD,)


def test_each_applied_line_is_printed_after_its_commit(postgresql_url: str, pg_server, tmp_path: Path) -> None:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    migrator = subprocess.Popen([*command_prefix(), "--url", postgresql_url, "upgrade"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = postgresql_url.split("?")[0].rsplit("/", 1)[-1]
    seen = []
    with psycopg.connect(host=str(pg_server.socket_dir), user=pg_server.user, dbname=name, autocommit=True) as watcher:
        for line in migrator.stdout:
            if line.startswith("applied "):
                revision = line.split()[1]
                committed = watcher.execute(
                    "SELECT count(*) FROM mypkg_migration_ledger WHERE revision = %s AND outcome = 'applied'",
                    (revision,),
                ).fetchone()[0]
                seen.append((revision, committed))
    migrator.wait(60)
    migrator.stderr.close()
    migrator.stdout.close()
    assert migrator.returncode == 0
    assert seen == [(revision, 1) for revision in REVISIONS]


AUTOCOMMIT_REVISION = '''\
"""test only: work inside an autocommit block

Revision ID: 5107aaaa0001
Revises: {parent}
"""
from alembic import op

revision = "5107aaaa0001"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT 1")
    with op.get_context().autocommit_block():
        op.execute("SELECT pg_sleep(1.2)")
    op.execute("SELECT 1")


def downgrade() -> None:
    pass
'''


def test_a_revision_with_an_autocommit_block_is_timed_whole(source_copy: Path, postgresql_url: str) -> None:
    (source_copy / "alembic" / "versions" / "9999_5107aaaa0001_autocommit.py").write_text(
        AUTOCOMMIT_REVISION.format(parent=HEAD))
    result = subprocess.run([sys.executable, "-m", "mypkg", "--url", postgresql_url, "upgrade"], cwd=source_copy,
                            env=_copy_env(source_copy), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("applied  5107aaaa0001"))
    assert int(line.rsplit("(", 1)[1].split()[0]) >= 1200, line
    rows = subprocess.run([sys.executable, "-m", "mypkg", "--url", postgresql_url, "history", "--applied", "--json"],
                          cwd=source_copy, env=_copy_env(source_copy), capture_output=True, text=True, timeout=120)
    (row,) = [r for r in json.loads(rows.stdout)["rows"] if r["revision"] == "5107aaaa0001"]
    assert row["duration_ms"] >= 1200


class SilentServer:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.mark.parametrize("scheme, shown", [("postgresql", "postgresql+psycopg"), ("mysql+pymysql", "mysql+pymysql")])
@pytest.mark.parametrize("command", [["status"], ["current"], ["upgrade"]])
def test_a_server_that_never_answers_fails_once_within_the_connect_timeout(
    command: list[str], scheme: str, shown: str, tmp_path: Path
) -> None:
    """PostgreSQL's and MySQL's clients alike: the greeting that never comes is bounded."""
    silent = SilentServer()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        url = f"{scheme}://app:s3cret@127.0.0.1:{silent.port}/app"
        started = time.monotonic()
        result = subprocess.run([*command_prefix(), "--connect-timeout", "2", "--url", url, *command],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        waited = time.monotonic() - started
    finally:
        silent.close()
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"cannot connect to {shown}://app:***@127.0.0.1" in line
    assert "timeout" in line.lower() or "timed out" in line.lower(), line
    assert "s3cret" not in result.stderr
    assert 2 <= waited < 12  # bounded; and one attempt only:
    assert len(silent.accepted) == 1


def test_a_backup_that_fails_leaves_no_file_and_no_migration(tmp_path: Path) -> None:
    """A full disk, reproduced with a file-size limit on the migrator: the backup fails, its
    partial file is removed, nothing is migrated, and the message says the backup failed."""
    import resource
    import sqlite3

    db = tmp_path / "app.db"
    url = f"sqlite:///{db}"
    mypkg.upgrade(url)
    with sqlite3.connect(db) as connection:
        connection.executemany("INSERT INTO my_table (name, display_name) VALUES (?, ?)",
                               [(f"name {i} " + "x" * 80, f"display {i}") for i in range(3000)])
    size = db.stat().st_size
    before = "\n".join(sqlite3.connect(db).iterdump())

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run([*command_prefix(), "--url", url, "downgrade", "-1", "--backup"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "the backup of" in line and "failed" in line and "nothing was migrated" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "app.db.mypkg-migrate.lock"]
    assert "\n".join(sqlite3.connect(db).iterdump()) == before
    assert mypkg.current(url) == (HEAD,)


@pytest.fixture
def read_only_directory(tmp_path: Path):  # noqa: ANN201
    """A directory holding a database one revision behind, then made read-only: a read-only
    bind mount for root (which file modes do not stop), file modes for anyone else."""
    writable = tmp_path / "data"
    writable.mkdir()
    mypkg.upgrade(f"sqlite:///{writable / 'app.db'}", REVISIONS[-2])
    if os.geteuid() != 0:
        writable.chmod(0o555)
        yield writable
        writable.chmod(0o755)
        return
    mounted = tmp_path / "ro"
    mounted.mkdir()
    subprocess.run(["mount", "--bind", str(writable), str(mounted)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        yield mounted
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


@pytest.mark.parametrize("args, says", [
    (("upgrade",), "is read-only"),
    (("downgrade", "-1"), "is read-only"),
    (("stamp", "head", "--force"), "is read-only"),
])
def test_a_read_only_directory_is_refused_before_any_write(read_only_directory: Path, args: tuple[str, ...],
                                                          says: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    url = f"sqlite:///{read_only_directory / 'app.db'}"
    result = subprocess.run([*command_prefix(), "--url", url, *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert says in line, line
    assert mypkg.current(url) == (REVISIONS[-2],)
    status = subprocess.run([*command_prefix(), "--url", url, "status"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 1 and "pending:  1 revision(s)" in status.stdout  # reading works
    new = subprocess.run([*command_prefix(), "--url", f"sqlite:///{read_only_directory / 'new.db'}", "upgrade"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert new.returncode == 1 and "is read-only" in new.stderr


@pytest.mark.parametrize("command", [["status"], ["current"], ["upgrade"], ["history", "--applied"], ["verify"],
                                     ["downgrade", "-1"], ["stamp", "head"]])
@pytest.mark.parametrize("how", ["option", "variable"])
def test_the_busy_timeout_bounds_every_command_on_a_held_sqlite_file(command: list[str], how: str, tmp_path: Path) -> None:
    """Another process holds the file (an exclusive transaction): every command gives up
    after --busy-timeout (or $MYPKG_BUSY_TIMEOUT), the fast path's connection included
    (before: 5 s more there, and the read commands waited 30 s whatever was asked)."""
    import sqlite3

    db = tmp_path / "app.db"
    mypkg.upgrade(f"sqlite:///{db}")
    before = "\n".join(sqlite3.connect(db).iterdump())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    bound = ["--busy-timeout", "1"] if how == "option" else []
    if how == "variable":
        env["MYPKG_BUSY_TIMEOUT"] = "1"
    # The machine's pace: the same command on an unheld copy (start-up, imports, its work).
    shutil.copy(db, tmp_path / "unheld.db")
    started = time.monotonic()
    subprocess.run([*command_prefix(), "--url", f"sqlite:///{tmp_path / 'unheld.db'}", *bound, *command],
                   cwd=tmp_path, env=env, capture_output=True, timeout=120)
    pace = time.monotonic() - started
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        result = subprocess.run([*command_prefix(), "--url", f"sqlite:///{db}", *bound, *command], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=120)
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "database is locked" in line and "--busy-timeout" in line
    # The 1 s bound, on top of what the command costs on this machine now (with a margin):
    # never sqlite3's own 5 s more, nor the 30 s default.
    assert 1 <= waited < 1 + 2 * pace + 1.5, (waited, pace)
    assert "\n".join(sqlite3.connect(db).iterdump()) == before


def test_a_held_sqlite_file_is_waited_for_once_not_again_by_the_full_path(tmp_path: Path) -> None:
    """The fast path waited the whole --busy-timeout and the file is still held: it says so,
    rather than stepping aside for the full path to wait the bound a second time."""
    import sqlite3

    db = tmp_path / "app.db"
    mypkg.upgrade(f"sqlite:///{db}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    shutil.copy(db, tmp_path / "unheld.db")  # the machine's pace: the same command, unheld
    started = time.monotonic()
    subprocess.run([*command_prefix(), "--url", f"sqlite:///{tmp_path / 'unheld.db'}", "--busy-timeout", "4", "status"],
                   cwd=tmp_path, env=env, capture_output=True, timeout=120)
    pace = time.monotonic() - started
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        result = subprocess.run([*command_prefix(), "--url", f"sqlite:///{db}", "--busy-timeout", "4", "status"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert result.returncode == 1 and "database is locked" in result.stderr, result.stderr
    # Once the bound, on top of the command's own cost here: twice the bound would be 8 s.
    assert 4 <= waited < 4 + 2 * pace + 1.5, (waited, pace)


def test_a_server_that_stops_mid_revision_is_told_in_one_line(source_copy: Path, tmp_path: Path) -> None:
    """PostgreSQL shut down while a revision runs: one line saying the connection was lost and
    that the revision did not commit; no driver noise, no 'is at unknown'."""
    from tests.runtime.test_concurrency import SLOW_REVISION
    from tests.servers.postgresql import PostgresServer

    (source_copy / "alembic" / "versions" / "9999_5107dead0001_slow.py").write_text(SLOW_REVISION.format(parent=HEAD))
    server = PostgresServer().start()
    try:
        url = server.create_database()
        marker = tmp_path / "half-way"
        migrator = subprocess.Popen([sys.executable, "-m", "mypkg", "--url", url, "upgrade"], cwd=source_copy,
                                    env=_copy_env(source_copy, MYPKG_TEST_SLOW_MARKER=str(marker)),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and migrator.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), migrator.communicate(timeout=60)
    finally:
        server.stop()
    out, err = migrator.communicate(timeout=120)
    assert migrator.returncode == 1, err
    (line,) = err.strip().splitlines()
    assert "revision 5107dead0001" in line and "unknown" not in line, line
    assert "connection" in line.lower() and "not committed" in line, line
    assert f"applied  {HEAD}" in out


def test_a_sigterm_after_the_outcome_does_not_change_it(tmp_path: Path) -> None:
    """An orchestrator stopping a pod whose migrator just finished: the exit code is the
    command's (before: death by SIGTERM, silent)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    script = (
        "import os, signal, sys, time\n"
        "from mypkg.migrate.cli import main\n"
        f"sys.argv = ['mypkg-migrate', '--url', {url!r}, 'upgrade']\n"
        "code = main()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.5)\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and mypkg.current(url) == (HEAD,)


def test_a_program_calling_main_gets_its_own_sigterm_handler_back(tmp_path: Path) -> None:
    script = (
        "import signal, sys\n"
        "from mypkg.migrate.cli import main\n"
        "def mine(signum, frame): pass\n"
        "signal.signal(signal.SIGTERM, mine)\n"
        f"main(['--url', 'sqlite:///{tmp_path / 'app.db'}', 'current'])\n"
        "sys.exit(0 if signal.getsignal(signal.SIGTERM) is mine else 3)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_plain_alembic_waits_the_users_busy_timeout_too(source_copy: Path, tmp_path: Path) -> None:
    """Every SQLite engine takes $MYPKG_BUSY_TIMEOUT, the one plain alembic's env.py makes too
    (it kept sqlite3's 5 s)."""
    import shutil
    import sqlite3

    from tests.conftest import REPO

    shutil.copy(REPO / "alembic.ini", source_copy / "alembic.ini")
    db = tmp_path / "app.db"
    mypkg.upgrade(f"sqlite:///{db}", REVISIONS[-2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(MYPKG_DATABASE_URL=f"sqlite:///{db}", MYPKG_BUSY_TIMEOUT="1", PYTHONPATH=str(source_copy))
    # The machine's pace: the same alembic run on an unheld copy (at head: start-up, imports).
    unheld = tmp_path / "unheld.db"
    mypkg.upgrade(f"sqlite:///{unheld}")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=source_copy,
                   env={**env, "MYPKG_DATABASE_URL": f"sqlite:///{unheld}"}, capture_output=True, timeout=120)
    pace = time.monotonic() - started
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=source_copy, env=env,
                                capture_output=True, text=True, timeout=120)
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert result.returncode != 0 and "database is locked" in result.stdout + result.stderr
    assert 1 <= waited < 1 + 2 * pace + 1.5, (waited, pace)
