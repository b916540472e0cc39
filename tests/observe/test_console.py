"""A revision's start, for people: ``applying REV`` in a log, a ``running REV (Ns)`` line on a
terminal for a revision longer than a second (a real pseudo-terminal, a revision that
really takes 2.5 s)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli
from tests.runtime.test_api import HEAD, REVISIONS

SLOW_REVISION = f'''\
"""takes its time

Revision ID: 5104000000a1
Revises: {HEAD}
"""
import time

revision = "5104000000a1"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    time.sleep(2.5)


def downgrade() -> None:
    pass
'''


def test_a_log_gets_a_line_before_each_revision(cli: Cli, sqlite_url: str) -> None:
    done = cli("--url", sqlite_url, "upgrade")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [
        [word, rev] for rev in REVISIONS for word in ("applying", "applied")]
    assert lines[0] == f"applying {REVISIONS[0]}  create initial tables"
    back = cli("--url", sqlite_url, "downgrade", "-1")
    assert back.stdout.splitlines()[0] == f"reverting {HEAD}  index note my_table_id", back.stdout
    assert cli("--url", sqlite_url, "upgrade", "-q").stdout == ""


def test_a_terminal_shows_a_revision_running_longer_than_a_second(source_copy: Path, sqlite_url: str) -> None:
    (source_copy / "alembic" / "versions" / "9999_5104000000a1_slow.py").write_text(SLOW_REVISION)
    cli = Cli(source_copy, {"PYTHONPATH": str(source_copy)})
    assert cli("--url", sqlite_url, "upgrade", HEAD, "-q").returncode == 0
    done = cli.on_terminal("--url", sqlite_url, "upgrade")
    assert done.returncode == 0, done.stdout
    screen = done.stdout
    assert "applying" not in screen  # a person at a terminal sees the running line instead
    running = "\rmypkg-migrate: running 5104000000a1  takes its time"
    assert f"{running} (1s)\033[K" in screen and f"{running} (2s)\033[K" in screen, repr(screen)
    # Wiped when the revision ends; the result line takes its place.
    wiped, _, after = screen.rpartition("\r\033[K")
    assert wiped and after.startswith("applied  5104000000a1  takes its time  ("), repr(screen)
    # A fast revision shows none.
    (source_copy / "alembic" / "versions" / "9999_5104000000a1_slow.py").write_text(
        SLOW_REVISION.replace("time.sleep(2.5)", "pass"))
    quick = cli.on_terminal("--url", sqlite_url, "downgrade", "-1")
    assert quick.returncode == 0 and "running" not in quick.stdout, repr(quick.stdout)


def test_a_closed_terminal_never_stops_a_migration(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The running line's thread meets a closed stream (a terminal gone): it stops quietly."""
    import threading
    import time

    from mypkg.migrate.observe.console import Console

    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    terminal = (tmp_path / "tty").open("w")
    terminal.close()
    console = Console(None, terminal, after=0.05)
    console("revision.start", {"revision": "r", "message": "m", "direction": "upgrade", "plugin": None})
    time.sleep(0.3)
    console("revision.applied", {"revision": "r"})
    assert failures == []
