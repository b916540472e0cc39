"""The world deploy phases exist for: two releases of an application running at once.

Release N and release N+1 each have their own models and a process reading and writing
through them in a loop. Release N runs; N+1's pre-deploy phase runs beside it; N+1 starts
while N still runs; N stops; the post-deploy phase runs; N+1 runs on. Three changes at once:
a column renamed (note.body to content), a type changed (counter.hits, int to bigint), a
column dropped (my_table.display_name). Not one error in either application, on real
SQLite, PostgreSQL and MariaDB; and the same history run without phases breaks release N
(so the test can fail)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.test_api import run_copy
from tests.runtime.test_phase_transitions import COUNTER

#: One revision per table, as docs/deploying.md advises: a revision that holds one table's
#: lock while it waits for another's deadlocks with an application writing both in the other
#: order (PostgreSQL picks one; the statement lock timeout makes it the migrator, retried).
STEP = '''"""{message}"""
import sqlalchemy as sa
from alembic import op
from mypkg.phases import *

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None
{phase}

def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    {downgrade}
'''

STEPS = [
    ("f0000000b002", "display_name optional (release N+1 no longer writes it)", "",
     'with op.batch_alter_table("my_table") as batch:\n'
     '        batch.alter_column("display_name", existing_type=sa.String(100), nullable=True)',
     'with op.batch_alter_table("my_table") as batch:\n'
     '        batch.alter_column("display_name", existing_type=sa.String(100), nullable=False)'),
    ("f0000000b003", "note.body becomes content (expand)", "",
     'rename_column("note", "body", "content")', 'undo_rename_column("note", "body", "content")'),
    ("f0000000b004", "counter.hits becomes a bigint (expand)", "",
     'change_column_type("counter", "hits", sa.BigInteger())', 'undo_change_column_type("counter", "hits")'),
    ("f0000000b005", "note.body gone", 'phase = "post"',
     'complete_rename_column("note", "body", "content")', 'undo_complete_rename_column("note", "body", "content")'),
    ("f0000000b006", "the int counter.hits gone", 'phase = "post"',
     'complete_change_column_type("counter", "hits")',
     'undo_complete_change_column_type("counter", "hits", sa.Integer())'),
    ("f0000000b007", "display_name gone", 'phase = "post"',
     'with op.batch_alter_table("my_table") as batch:\n        batch.drop_column("display_name")',
     'op.add_column("my_table", sa.Column("display_name", sa.String(100)))'),
]


#: One release of the application: its own models, a loop of writes and reads through them.
APPLICATION = '''
import json, signal, sys, time
import sqlalchemy as sa

url, release, ready = sys.argv[1], sys.argv[2], sys.argv[3]
metadata = sa.MetaData()
if release == "N":
    my_table = sa.Table("my_table", metadata, sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("name", sa.String(100)), sa.Column("display_name", sa.String(100)))
    note = sa.Table("note", metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("my_table_id", sa.Integer), sa.Column("body", sa.Text))
    text, extra = note.c.body, {"display_name": None}
    counter = sa.Table("counter", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("hits", sa.Integer))
else:
    my_table = sa.Table("my_table", metadata, sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("name", sa.String(100)))
    note = sa.Table("note", metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("my_table_id", sa.Integer), sa.Column("content", sa.Text))
    text, extra = note.c.content, {}
    counter = sa.Table("counter", metadata, sa.Column("id", sa.Integer, primary_key=True),
                       sa.Column("hits", sa.BigInteger))

def retried(work):
    """``work()`` in a transaction, again when MySQL/MariaDB asks for it, as MySQL's
    documentation asks of every application: 1213, a deadlock's victim (MariaDB picks the
    application's statement over a DDL statement on a table with foreign keys, a metadata-lock
    deadlock), and 1412, "Table definition has changed, please retry transaction" (its
    snapshot predates an ALTER). Returns the retries."""
    for attempt in range(5):
        try:
            work()
            return attempt
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "args", (None,))[0] not in (1213, 1412) or attempt == 4:
                raise


def write(i, done):
    with engine.begin() as conn:
        values = {"id": i, "name": f"{release} {i}"}
        if extra:
            values["display_name"] = f"{release} {i}"
        conn.execute(my_table.insert().values(**values))
        conn.execute(note.insert().values({"id": i, "my_table_id": i, text.name: f"{release} wrote {i}"}))
        conn.execute(counter.insert().values(id=i, hits=done))
        conn.execute(counter.update().where(counter.c.id == i).values(hits=counter.c.hits + 1))


def read(i, done):
    with engine.connect() as conn:
        seen = conn.execute(sa.select(note.c.id, text).order_by(note.c.id.desc()).limit(5)).all()
        assert all(row[1] is not None for row in seen), seen  # the other release's rows too
        assert conn.execute(sa.select(counter.c.hits).where(counter.c.id == i)).scalar_one() == done + 1


stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
engine = sa.create_engine(url, **kwargs)
done, errors, retries, base = 0, [], 0, (1_000_000 if release == "N" else 2_000_000)
open(ready, "w").close()
while not stopping:
    i = base + done
    try:
        retries += retried(lambda: write(i, done)) + retried(lambda: read(i, done))
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    done += 1
    time.sleep(0.005)
print(json.dumps({"done": done, "errors": errors[:5], "failed": len(errors), "deadlocks_retried": retries}))
'''


@pytest.fixture
def history(source_copy: Path) -> Path:
    versions = source_copy / "alembic" / "versions"
    (versions / "9999_b001_counter.py").write_text(COUNTER)
    down = "f0000000a001"
    for revision, message, phase, upgrade, downgrade in STEPS:
        (versions / f"9999_{revision}.py").write_text(STEP.format(
            message=message, revision=revision, down=down, phase=phase, upgrade=upgrade, downgrade=downgrade))
        down = revision
    return source_copy


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def any_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


class Release:
    def __init__(self, tmp_path: Path, url: str, name: str) -> None:
        script = tmp_path / "application.py"
        script.write_text(APPLICATION)
        self.ready = tmp_path / f"ready-{name}"
        self.process = subprocess.Popen([sys.executable, str(script), url, name, str(self.ready)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            assert self.process.poll() is None and time.monotonic() < deadline, self.process.communicate()
            time.sleep(0.05)

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        return json.loads(out)


def migrate(history: Path, url: str, *args: str) -> None:
    """As docs/deploying.md runs each phase beside a running release: a statement waiting for
    a table lock gives way (and its revision is retried) before PostgreSQL's deadlock check
    (1 s) would pick the application's transaction as the victim."""
    done = run_copy(history, "--url", url, "upgrade", "--statement-lock-timeout", "0.5", *args)
    assert done.returncode == 0, done.stderr


def test_two_releases_run_through_the_deploy_without_an_error(
    history: Path, any_url: str, tmp_path: Path
) -> None:
    migrate(history, any_url, "f0000000a001")
    old = Release(tmp_path, any_url, "N")
    time.sleep(0.5)
    migrate(history, any_url, "--phase", "pre")  # beside release N
    new = Release(tmp_path, any_url, "N+1")  # N still runs
    time.sleep(1.0)
    n = old.stop()
    migrate(history, any_url, "--phase", "post")  # N is gone
    time.sleep(0.5)
    n1 = new.stop()
    if n["failed"] or n1["failed"]:
        import subprocess as sp
        print(sp.run([sys.executable, "/tmp/debug_deadlock.py", any_url], capture_output=True, text=True).stdout)
    assert n["failed"] == 0 and n["done"] > 10, n
    assert n1["failed"] == 0 and n1["done"] > 10, n1
    if not any_url.startswith("mysql"):  # only MariaDB asks the application to retry for DDL's sake
        assert n["deadlocks_retried"] == n1["deadlocks_retried"] == 0, (n, n1)


def test_without_phases_the_same_history_breaks_the_running_release(
    history: Path, postgresql_url: str, tmp_path: Path
) -> None:
    migrate(history, postgresql_url, "f0000000a001")
    old = Release(tmp_path, postgresql_url, "N")
    time.sleep(0.5)
    migrate(history, postgresql_url)  # everything at once, while N runs
    time.sleep(0.5)
    n = old.stop()
    assert n["failed"] > 0, n
    assert any("body" in error or "display_name" in error for error in n["errors"]), n
