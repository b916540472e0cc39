"""URL forms users write, run as the command: in-memory SQLite, SQLite ``file:`` URIs with
their own parameters, secrets under names of every spelling."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import mypkg
from tests.conftest import Cli

HEAD = mypkg.heads()[0]


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_migrates_and_leaves_no_file(cli: Cli, tmp_path: Path, url: str) -> None:
    done = cli("--url", url, "upgrade")
    assert done.returncode == 0, done.stderr
    assert f"upgraded from base (empty database) to {HEAD}" in done.stdout
    status = cli("--url", url, "status")  # a new process: a new, empty memory database
    assert status.returncode == 1 and "base (empty database)" in status.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written to disk, not even a lock file


def test_a_file_uri_with_its_own_parameters_is_that_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    mypkg.upgrade(f"sqlite:///{path}")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    status = cli("--url", read_only, "status")
    assert status.returncode == 0 and f"current:  {HEAD}" in status.stdout, status.stderr
    refused = cli("--url", read_only, "downgrade", "-1")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"mypkg-migrate: error: {read_only} is opened read-only (mode=ro): "
                                      "this command writes; drop mode=ro")  # shown as written
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    missing = cli("--url", f"sqlite:///file:{tmp_path / 'nodir' / 'x.db'}?mode=ro&uri=true", "status")
    assert missing.returncode == 1 and f"directory {tmp_path / 'nodir'} does not exist" in missing.stderr


@pytest.mark.parametrize("name", ["pwd", "PWD", "Password", "sslpassword", "api_token", "private_key"])
def test_a_secret_under_any_spelling_is_never_printed(cli: Cli, name: str) -> None:
    """An unreachable server: the error names the URL, with the secret masked."""
    result = cli("--connect-timeout", "2", "--url", f"postgresql://app@127.0.0.1:1/app?{name}=hunter2", "status")
    assert result.returncode == 1
    assert "hunter2" not in result.stderr and f"{name}=***" in result.stderr


@pytest.mark.parametrize("args", [("status",), ("current",), ("history", "--applied"), ("verify",)])
def test_reading_a_missing_file_creates_nothing(cli: Cli, tmp_path: Path, args: tuple[str, ...]) -> None:
    """The full path (the fast path steps aside for a file it cannot open) reads "empty", or
    says the file is missing, and leaves no file behind: a typo in a path is not a database."""
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    result = cli("--url", url, *args, MYPKG_NO_FASTPATH="1")
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_a_file_uri_with_a_query_locks_and_reads_that_file(cli: Cli, tmp_path: Path) -> None:
    """The file is the part before ``?``: the migration lock's sidecar sits beside it (not a
    file named after the query in the working directory), and the full path reads it."""
    path = tmp_path / "data" / "app.db"
    path.parent.mkdir()
    uri = f"sqlite:///file:{path}?cache=private&uri=true"
    work = tmp_path / "work"
    work.mkdir()
    done = Cli(work)("--url", uri, "upgrade")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in path.parent.iterdir()) == ["app.db", "app.db.mypkg-migrate.lock"]
    assert list(work.iterdir()) == []
    current = Cli(work)("--url", uri, "current", MYPKG_NO_FASTPATH="1")
    assert current.returncode == 0 and current.stdout.startswith(HEAD), current.stdout + current.stderr
