"""Everywhere conda installs it: the SQLite lock on Windows and BSD lock semantics, and
migrations beside an application that writes to the same SQLite file.

Other platforms' lock semantics are reproduced on Linux in the migrators' own processes
(a ``sitecustomize`` on their path): "windows" has no ``fcntl`` at all; "bsd" has
``flock`` made of open-file-description locks, which conflict with SQLite's POSIX locks
on the same file as ``flock`` does on macOS, the BSDs and network filesystems.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mypkg
from mypkg.migrate.database import locks
from tests.conftest import applied_lines, command_prefix, run_at_once

HEAD = mypkg.heads()[0]
REVISIONS = [rev.revision for rev in mypkg.history()]

PLATFORMS = {
    "native": "",
    "windows": """
        import sys
        sys.modules["fcntl"] = None  # ModuleNotFoundError on import, as on Windows
    """,
    "bsd": """
        import fcntl, os, struct

        def flock(fd, operation):
            # An open-file-description lock on the whole file: it conflicts with the POSIX
            # locks SQLite takes on the same file, as flock does on BSD and NFS.
            kind = fcntl.F_UNLCK if operation & fcntl.LOCK_UN else (
                fcntl.F_WRLCK if operation & fcntl.LOCK_EX else fcntl.F_RDLCK)
            command = fcntl.F_OFD_SETLK if operation & fcntl.LOCK_NB else fcntl.F_OFD_SETLKW
            try:
                fcntl.fcntl(fd, command, struct.pack("hhxxxxqqixxxx", kind, os.SEEK_SET, 0, 0, 0))
            except OSError as exc:
                raise BlockingIOError(exc.errno, exc.strerror) from None

        fcntl.flock = flock
    """,
}


def platform_env(name: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    if PLATFORMS[name]:
        site = tmp_path / f"site-{name}"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(textwrap.dedent(PLATFORMS[name]))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def migrate(env: dict[str, str], cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command_prefix(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(params=sorted(PLATFORMS))
def platform(request: pytest.FixtureRequest) -> str:
    return request.param


class TestSqliteLockOnEveryPlatform:
    """The lock is a sidecar file through filelock: no fcntl needed, no conflict with SQLite."""

    def test_the_emulations_are_what_they_claim(self, tmp_path: Path) -> None:
        probe = "import importlib.util, fcntl; print(fcntl.flock.__module__)"
        windows = subprocess.run([sys.executable, "-c", probe], env=platform_env("windows", tmp_path),
                                 capture_output=True, text=True)
        assert "ModuleNotFoundError" in windows.stderr
        bsd = subprocess.run([sys.executable, "-c", probe], env=platform_env("bsd", tmp_path),
                             capture_output=True, text=True)
        assert bsd.stdout.strip() == "sitecustomize"
        # Under "bsd", a lock on the database file itself makes SQLite's own lock fail:
        # the failure earlier releases had there.
        db = tmp_path / "probe.db"
        sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
        clash = textwrap.dedent(f"""
            import fcntl, os, sqlite3
            fd = os.open({str(db)!r}, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            connection = sqlite3.connect({str(db)!r}, timeout=0.2)
            try:
                connection.execute("INSERT INTO t VALUES (1)")
                connection.commit()
                print("written")
            except sqlite3.OperationalError as exc:
                print(exc)
        """)
        result = subprocess.run([sys.executable, "-c", clash], env=platform_env("bsd", tmp_path),
                                capture_output=True, text=True, timeout=60)
        assert result.stdout.strip() == "database is locked"

    def test_upgrade_and_downgrade(self, platform: str, tmp_path: Path) -> None:
        env = platform_env(platform, tmp_path)
        url = f"sqlite:///{tmp_path / 'app.db'}"
        up = migrate(env, tmp_path, "--url", url, "upgrade", "--busy-timeout", "5")
        assert up.returncode == 0, up.stderr
        assert up.stderr == ""
        assert (tmp_path / "app.db.mypkg-migrate.lock").exists() or platform == "windows"
        down = migrate(env, tmp_path, "--url", url, "downgrade", "base", "--yes", "--busy-timeout", "5")
        assert down.returncode == 0, down.stderr
        assert mypkg.current(url) == ()

    def test_four_migrators_at_once_apply_each_revision_once(self, platform: str, tmp_path: Path) -> None:
        env = platform_env(platform, tmp_path)
        url = f"sqlite:///{tmp_path / 'app.db'}"
        results = run_at_once([*command_prefix(), "--url", url, "upgrade", "--lock-timeout", "120"], 4,
                              env=env, cwd=tmp_path)
        assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
        assert applied_lines(results) == {rev: 1 for rev in REVISIONS}
        assert mypkg.current(url) == (HEAD,)

    def test_a_held_lock_makes_the_next_migrator_wait_then_give_up(self, platform: str, tmp_path: Path) -> None:
        env = platform_env(platform, tmp_path)
        url = f"sqlite:///{tmp_path / 'app.db'}"
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import sys, time
                from mypkg.migrate.database import locks
                from mypkg.migrate.database.target import resolve
                db = resolve({url!r})
                with locks.sqlite_lock(db.sqlite_path, db, timeout=5):
                    print("held", flush=True)
                    sys.stdin.readline()
            """)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            started = time.monotonic()
            result = migrate(env, tmp_path, "--url", url, "upgrade", "--lock-timeout", "1")
            assert time.monotonic() - started >= 1
            assert result.returncode == 1
            assert "could not take the migration lock" in result.stderr.splitlines()[-1]
            assert mypkg.current(url) == ()
        finally:
            holder.stdin.close()
            holder.wait(30)
            holder.stdout.close()
        assert migrate(env, tmp_path, "--url", url, "upgrade").returncode == 0

    def test_the_lock_is_released_when_its_holder_is_killed(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'app.db'}"
        env = platform_env("native", tmp_path)
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import time
                from mypkg.migrate.database import locks
                from mypkg.migrate.database.target import resolve
                db = resolve({url!r})
                with locks.sqlite_lock(db.sqlite_path, db, timeout=5):
                    print("held", flush=True)
                    time.sleep(600)
            """)],
            env=env, stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait(30)
        holder.stdout.close()
        result = migrate(env, tmp_path, "--url", url, "upgrade", "--lock-timeout", "5")
        assert result.returncode == 0, result.stderr
        assert "waiting" not in result.stderr

    def test_the_sidecar_is_named_from_the_database_file(self, tmp_path: Path) -> None:
        assert locks.sidecar(tmp_path / "app.db") == tmp_path / "app.db.mypkg-migrate.lock"


# --- an application writing while upgrade runs -------------------------------------------

APPLICATION = """
import sqlite3, sys, time
path, stop = sys.argv[1], sys.argv[2]
connection = sqlite3.connect(path, timeout=5, isolation_level=None)
connection.execute("CREATE TABLE IF NOT EXISTS app_events (at REAL)")
written = errors = 0
import os
print("writing", flush=True)
while not os.path.exists(stop):
    try:
        connection.execute("INSERT INTO app_events VALUES (?)", (time.time(),))
        written += 1
    except sqlite3.Error as exc:
        errors += 1
        print(f"error: {exc}", file=sys.stderr, flush=True)
    time.sleep(0.002)
print(written, errors, flush=True)
"""


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_upgrade_beside_an_application_writing_every_few_milliseconds(journal: str, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as connection:
        assert connection.execute(f"PRAGMA journal_mode={journal}").fetchone()[0] == journal
    env = platform_env("native", tmp_path)
    url = f"sqlite:///{db}"
    # Migrated once before the application starts: a file holding only its tables would be
    # refused as another application's database.
    assert migrate(env, tmp_path, "--url", url, "upgrade", "head-2").returncode == 0
    stop = tmp_path / "stop"
    app = subprocess.Popen([sys.executable, "-c", APPLICATION, str(db), str(stop)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline().strip() == "writing"
        for args in (["upgrade"], ["downgrade", "base", "--yes"], ["upgrade"], ["downgrade", "-2"], ["upgrade"]):
            result = migrate(env, tmp_path, "--url", url, *args)
            assert result.returncode == 0, (args, result.stderr)
    finally:
        stop.touch()
        out, err = app.communicate(timeout=60)
    written, errors = (int(n) for n in out.split())
    assert (errors, err) == (0, "")
    assert written > 50
    assert mypkg.current(url) == (HEAD,)


def test_a_reader_in_a_long_transaction_gets_a_message_that_says_so(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    url = f"sqlite:///{db}"
    env = platform_env("native", tmp_path)
    assert migrate(env, tmp_path, "--url", url, "upgrade", "head-1").returncode == 0
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM my_table").fetchone()  # holds a SHARED lock
    try:
        started = time.monotonic()
        result = migrate(env, tmp_path, "--url", url, "upgrade", "--busy-timeout", "1")
        waited = time.monotonic() - started
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "database is locked" in lines[0]
    assert "another connection held the database for longer than the busy timeout" in lines[0]
    assert "reader in a long transaction" in lines[0] and "--busy-timeout" in lines[0]
    assert waited >= 1
    assert mypkg.current(url) == (REVISIONS[-2],)  # the last good revision
    assert migrate(env, tmp_path, "--url", url, "upgrade").returncode == 0
