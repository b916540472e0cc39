"""A throwaway MariaDB server for the tests, started with the server's own tools.

It listens on a unix socket only (``skip-networking``), in a private directory, runs as
the ``mysql`` user that Debian's package creates when the tests run as root, and is
stopped at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def find(program: str) -> str:
    for candidate in (shutil.which(program), f"/usr/sbin/{program}", f"/usr/bin/{program}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{program} not found: apt-get install -y mariadb-server (.ci/run does)")


class MariaDBServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mypkg-mariadb-"))
        self.data = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.user = "mysql" if os.geteuid() == 0 else None
        self.process: subprocess.Popen[str] | None = None
        if self.user:
            shutil.chown(self.root, user=self.user, group=self.user)
            os.chmod(self.root, 0o755)

    def _as_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *command] if self.user else command

    #: Extra server options (a replica's, a primary's binary log and TCP port).
    options: tuple[str, ...] = ("--skip-networking",)

    def start(self) -> MariaDBServer:
        install = [find("mariadb-install-db"), f"--datadir={self.data}", "--auth-root-authentication-method=normal",
                   "--skip-test-db", "--skip-name-resolve"]
        if self.user:
            install.append(f"--user={self.user}")
        subprocess.run(self._as_user(install), check=True, capture_output=True, text=True, timeout=300)
        self.process = subprocess.Popen(
            self._as_user([find("mariadbd"), "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
                           *self.options, f"--pid-file={self.root / 'mariadb.pid'}",
                           f"--log-error={self.root / 'error.log'}", "--innodb-flush-log-at-trx-commit=0",
                           "--innodb-buffer-pool-size=64M", "--max-connections=200"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "error.log").read_text() if (self.root / "error.log").exists() else ""
                raise RuntimeError(f"MariaDB did not start: {log[-2000:]}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        import gc
        import warnings

        if not self.socket.exists():
            return False
        with warnings.catch_warnings():
            # A refused attempt leaves PyMySQL's socket to the garbage collector.
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                self.connect().close()
                return True
            except Exception:  # noqa: BLE001 - not up yet
                return False
            finally:
                gc.collect()

    def connect(self, database: str | None = None):  # noqa: ANN201
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket), user="root", database=database, autocommit=True)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@localhost/{database}?unix_socket={self.socket}"

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.split("?")[0].rsplit("/", 1)[-1]
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MariaDBReplicated:
    """A primary writing its binary log, listening on 127.0.0.1 as well (replication speaks
    TCP), and a replica of it on a socket of its own, replicating from the first event."""

    def __init__(self) -> None:
        self.port = free_port()
        self.primary = MariaDBServer()
        self.primary.options = ("--log-bin=primary-bin", "--server-id=1", "--bind-address=127.0.0.1",
                                f"--port={self.port}", "--binlog-format=ROW")
        self.replica = MariaDBServer()
        self.replica.options = ("--skip-networking", "--server-id=2", "--relay-log=replica-relay")

    def start(self) -> MariaDBReplicated:
        self.primary.start()
        with self.primary.connect() as connection, connection.cursor() as cursor:
            cursor.execute("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'")
            cursor.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        self.replica.start()
        with self.replica.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.port}, MASTER_USER='repl', "
                           "MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos")
            cursor.execute("START SLAVE")
        return self

    def stop(self) -> None:
        try:
            self.replica.stop()
        finally:
            self.primary.stop()

    def sql_thread(self, running: bool) -> None:
        """Stop or start the replica's SQL thread: events keep arriving, none is applied."""
        with self.replica.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"{'START' if running else 'STOP'} SLAVE SQL_THREAD")
