"""A throwaway PostgreSQL server for the tests, started with the server's own tools.

It listens on a unix socket only (``listen_addresses=''``), in a private
directory, and is stopped at the end of the session. PostgreSQL refuses to run
as root, so under root it runs as the ``postgres`` user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def find_bindir() -> Path:
    """Debian's server binaries (``apt-get install postgresql``), newest version first."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: apt-get install -y postgresql (.ci/run does)"
    )


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="mypkg-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.user = "postgres"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, user="postgres", group="postgres")
            os.chmod(self.root, 0o755)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses='' -k {self.socket_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = database_name(url)
        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(url: str) -> str:
    return url.split("?")[0].rsplit("/", 1)[-1]


def client(server: PostgresServer, program: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one of the server's own client tools (psql, pg_dump) against ``url``'s database."""
    return subprocess.run(
        [str(server.bindir / program), "-h", str(server.socket_dir), "-U", server.user,
         "-d", database_name(url), *args],
        capture_output=True, text=True, timeout=120,
    )


class PostgresReplica(PostgresServer):
    """A streaming replica of ``primary`` on its own socket: ``pg_basebackup -R`` of the
    primary (its standby.signal and primary_conninfo written by the tool), started in hot
    standby. ``pause()`` and ``resume()`` its WAL replay, as an operator (or a slow disk) would."""

    def __init__(self, primary: PostgresServer) -> None:
        super().__init__()
        self.primary = primary

    def start(self) -> PostgresReplica:
        self._run("pg_basebackup", "-D", str(self.data), "-h", str(self.primary.socket_dir), "-U", self.user,
                  "-R", "-X", "stream", "-c", "fast")
        options = f"-c listen_addresses='' -k {self.socket_dir} -c hot_standby=on -c max_connections=100"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        return self

    def _replay(self, function: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f"SELECT {function}()")

    def pause(self) -> None:
        self._replay("pg_wal_replay_pause")

    def resume(self) -> None:
        self._replay("pg_wal_replay_resume")
