"""Shared fixtures: real SQLite files, a real PostgreSQL server, the command as a subprocess."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.mariadb import MariaDBServer
from tests.servers.postgresql import PostgresServer

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def scratch(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A module's or session's scratch folder, removed when its fixture ends: pytest keeps
    tmp_path_factory's folders whatever the retention policy (venvs and conda builds left
    about 200 MB a run)."""
    path = factory.mktemp(name)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
DIALECTS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def mypkg_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The package's wheel, built once for the suite as ``python -m build`` builds it."""
    with scratch(tmp_path_factory, "dist") as out:
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
            check=True, capture_output=True, text=True, timeout=300,
        )
        (built,) = out.glob("mypkg-*.whl")
        yield built


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    server = MariaDBServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mysql_url(mariadb_server: MariaDBServer) -> Iterator[str]:
    url = mariadb_server.create_database()
    try:
        yield url
    finally:
        mariadb_server.drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def postgresql_url(pg_server: PostgresServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each dialect: a new SQLite file, a new PostgreSQL database."""
    return request.getfixturevalue(f"{request.param}_url")


def command_prefix() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m mypkg``."""
    script = Path(sys.executable).parent / "mypkg-migrate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mypkg"]


class Cli:
    """Runs ``mypkg-migrate`` as a subprocess, in a directory, with a clean environment."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if k != "MYPKG_DATABASE_URL"}
        self.env.update(env or {})
        self.prefix = command_prefix()

    def __call__(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *args],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


    def on_terminal(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """As a person at a terminal runs it: stdout and stderr one pseudo-terminal, read in
        the order written (``stdout`` holds both; ``\r\n`` read as ``\n``)."""
        import pty
        import select
        import time

        master, slave = pty.openpty()
        with subprocess.Popen([*self.prefix, *args], cwd=self.cwd, env={**self.env, **env},
                              stdin=subprocess.DEVNULL, stdout=slave, stderr=slave) as process:
            os.close(slave)
            chunks, deadline = [], time.monotonic() + timeout
            try:
                while True:
                    ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
                    if not ready:
                        process.kill()
                        raise subprocess.TimeoutExpired(list(args), timeout)
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: every writer closed the terminal
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(master)
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        text = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
        return subprocess.CompletedProcess(list(args), code, text, "")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    """A copy of the package and its scripts, to add test-only revisions to.

    Imported through PYTHONPATH, it finds its scripts in the copied ``alembic/``
    beside it (the source-tree layout); the shipped scripts are never touched.
    """
    root = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "mypkg", root / "mypkg", ignore=ignore)
    shutil.copytree(REPO / "alembic", root / "alembic", ignore=ignore)
    return root


def run_at_once(command: list[str], count: int, *, env: dict[str, str], cwd: Path | None = None,
                timeout: float = 180) -> list[subprocess.CompletedProcess[str]]:
    """``count`` copies of ``command`` started together (a barrier), as replicas start."""
    import threading

    start = threading.Barrier(count)
    results: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        start.wait()
        results.append(subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout))

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def applied_lines(results: list[subprocess.CompletedProcess[str]]) -> dict[str, int]:
    """How many times each revision was reported applied, over all the runs."""
    import collections

    return dict(collections.Counter(
        line.split()[1] for result in results for line in result.stdout.splitlines() if line.startswith("applied ")
    ))
