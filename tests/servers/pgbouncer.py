"""A real pgbouncer in front of the suite's PostgreSQL server, on a unix socket only.

Started as the ``postgres`` user when the tests run as root (pgbouncer refuses root),
in transaction or session pooling, and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers.postgresql import PostgresServer

PORT = 6432


def find_pgbouncer() -> str:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("pgbouncer not found: apt-get install -y pgbouncer (.ci/run does)")


class PgBouncer:
    def __init__(self, server: PostgresServer, pool_mode: str, pool_size: int = 4, password: str | None = None) -> None:
        """``password``: clients must give it (SCRAM), as through a managed pooler; the
        server behind stays on trust."""
        self.server = server
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.root = Path(tempfile.mkdtemp(prefix=f"mypkg-bouncer-{pool_mode}-"))
        self.process: subprocess.Popen[str] | None = None
        secret = (password or "").replace('"', '""')
        (self.root / "userlist.txt").write_text(f'"{server.user}" "{secret}"\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.socket_dir} port=5432\n"
            "[pgbouncer]\n"
            "listen_addr =\n"  # no TCP at all: the unix socket only
            f"listen_port = {PORT}\n"
            f"unix_socket_dir = {self.root}\n"
            f"auth_type = {'scram-sha-256' if password else 'trust'}\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 200\n"
            f"admin_users = {server.user}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres", group="postgres")
            for child in self.root.iterdir():
                shutil.chown(child, user="postgres", group="postgres")

    def start(self) -> PgBouncer:
        command = [find_pgbouncer(), str(self.root / "pgbouncer.ini")]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        socket = self.root / f".s.PGSQL.{PORT}"
        deadline = time.monotonic() + 30
        while not socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start: {self.process.stderr.read() if self.process.stderr else ''}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
            if self.process.stderr:
                self.process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """The pooled URL of ``database`` (a name or a direct URL of the server)."""
        name = database.split("?")[0].rsplit("/", 1)[-1]
        return f"postgresql://{self.server.user}@/{name}?host={self.root}&port={PORT}"
