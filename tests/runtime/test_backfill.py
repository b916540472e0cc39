"""Long data migrations (mypkg.batch.backfill): batched, resumable, visible.

The history is a team's: a table, then a revision that adds a column, fills it from
another one with a backfill, and indexes it. The big tests fill 2,000,000 rows, kill the
migrator with SIGKILL once the ledger says half are done, and run it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.history import histories

TABLE_REV = "a1b2c3d4e5f6"
BACKFILL_REV = "b7c8d9e0f1a2"
LEDGER = "mypkg_migration_ledger"

BACKFILL = """
import os
from mypkg.batch import backfill, resuming
if not resuming():  # an interrupted run already added it
    op.add_column("item", sa.Column("slug", sa.String(64)))
done = backfill("item", values={os.environ.get("BACKFILL_COLUMN", "slug"): sa.func.lower(sa.column("name"))},
                where="slug IS NULL",
                batch_size=int(os.environ.get("BATCH_SIZE", "10000")))
if os.environ.get("BACKFILL_RESULT"):  # what backfill() returned: the rows this run updated
    open(os.environ["BACKFILL_RESULT"], "w").write(str(done))
if os.environ.get("AFTER_BACKFILL"):  # the window after the last batch: a long index build
    import pathlib, time
    # Closed before the test can see it: a temporary file object closed by the garbage
    # collector swallows a SIGTERM landing in its close (the sleep then runs on).
    pathlib.Path(os.environ["AFTER_BACKFILL"]).write_text("done")
    time.sleep(120)
op.create_index("ix_item_slug", "item", ["slug"])
"""


def project(root: Path, table_rev: str = TABLE_REV, backfill_rev: str = BACKFILL_REV) -> Path:
    return histories.project_with(root, [
        histories.script(
            "item.py", table_rev, None, "item table",
            upgrade='op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), '
                    'sa.Column("name", sa.String(64), nullable=False))',
            downgrade='op.drop_table("item")',
        ),
        histories.script(
            "slug.py", backfill_rev, table_rev, "item slug", upgrade=BACKFILL,
            downgrade='op.drop_index("ix_item_slug", table_name="item")\n'
                      'with op.batch_alter_table("item") as batch:\n    batch.drop_column("slug")',
        ),
    ])


class Project:
    """``python -m mypkg`` (or ``alembic``) from a checkout whose history is :func:`project`."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
        self.env.update(PYTHONPATH=str(root), MYPKG_DATABASE_URL=url)

    def command(self, *args: str, module: str = "mypkg") -> list[str]:
        return [sys.executable, "-m", module, *args]

    def run(self, *args: str, module: str = "mypkg", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args, module=module), cwd=self.root, env={**self.env, **env},
                              capture_output=True, text=True, timeout=600)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def fill(url: str, rows: int) -> None:
    """``rows`` items named ``Name-<id>``, written by the database itself."""
    engine = engine_for(url)
    name = "CONCAT('Name-', i)" if engine.dialect.name in ("mysql", "mariadb") else "'Name-' || i"
    series = (
        f"SELECT i, 'Name-' || i FROM generate_series(1, {rows}) AS i" if engine.dialect.name == "postgresql"
        else f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) SELECT i, {name} FROM n"
    )
    with engine.begin() as connection:
        if engine.dialect.name in ("mysql", "mariadb"):
            connection.exec_driver_sql(f"SET SESSION max_recursive_iterations = {rows + 1}")
        connection.exec_driver_sql(f"INSERT INTO item (id, name) {series}")
    engine.dispose()


def query(url: str, sql: str) -> list[tuple]:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def progress_rows(url: str) -> list[dict]:
    return [json.loads(detail) for (detail,) in query(url, f"SELECT detail FROM {LEDGER} WHERE outcome = 'backfilling'")]


def wrong_rows(url: str) -> int:
    return query(url, "SELECT count(*) FROM item WHERE slug IS NULL OR slug <> lower(name)")[0][0]


@pytest.fixture
def item_table(tmp_path: Path, database: str) -> Project:
    runner = Project(project(tmp_path / "project"), database)
    first = runner.run("upgrade", TABLE_REV)
    assert first.returncode == 0, first.stderr
    return runner


def test_a_killed_backfill_keeps_every_committed_batch_and_the_next_run_finishes_it(item_table: Project) -> None:
    # MariaDB: fewer rows (its batches are slower; what is proved is the same).
    url, rows = item_table.url, 300_000 if item_table.url.startswith("mysql") else 2_000_000
    fill(url, rows)
    migrator = subprocess.Popen(item_table.command("upgrade"), cwd=item_table.root, env=item_table.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    seen: list[dict] = []
    while time.monotonic() < deadline and migrator.poll() is None:
        try:
            seen = progress_rows(url)
        except sa.exc.OperationalError:  # SQLite: the batch's commit holds the file for a moment
            continue
        if seen and seen[0]["done"] >= rows // 2:
            migrator.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    _, stderr = migrator.communicate(timeout=60)
    assert migrator.returncode == -signal.SIGKILL, "the backfill ended before half way: " + stderr

    # What the ledger says is done is exactly what committed: no batch lost, none half-applied.
    [recorded] = progress_rows(url)
    done = query(url, "SELECT count(*) FROM item WHERE slug IS NOT NULL")[0][0]
    assert rows // 2 <= recorded["done"] == done < rows
    assert query(url, "SELECT max(id) FROM item WHERE slug IS NOT NULL")[0][0] == recorded["last_key"]
    assert query(url, "SELECT count(*) FROM item WHERE slug IS NOT NULL AND slug <> lower(name)")[0][0] == 0
    assert query(url, "SELECT version_num FROM alembic_version") == [(TABLE_REV,)]

    status = item_table.run("status")
    assert status.returncode == 1
    assert f"backfill item ({BACKFILL_REV}): {done:,} of {rows:,} rows" in status.stdout
    assert "upgrade continues it" in status.stdout
    assert json.loads(item_table.run("status", "--json").stdout)["interrupted"][0]["done"] == done

    again = item_table.run("upgrade")
    assert again.returncode == 0, again.stderr
    assert f"applied  {BACKFILL_REV}" in again.stdout
    assert f"{rows:,} of {rows:,} rows (100%)" in again.stderr  # continued, not restarted: done counts on
    assert f" {done + 10_000:,} of {rows:,} rows" in again.stderr
    assert wrong_rows(url) == 0
    assert progress_rows(url) == []
    assert item_table.run("status").returncode == 0


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_revision_stopped_after_its_last_batch_resumes_instead_of_sticking(
    item_table: Project, tmp_path: Path, how: signal.Signals
) -> None:
    """The window after backfill() (the index on millions of rows) is stoppable too: the
    progress row outlives the last batch until the revision commits, so resuming() skips
    the add_column that committed, and the next run finishes the revision."""
    fill(item_table.url, 50)
    marker = tmp_path / "after-backfill"
    migrator = subprocess.Popen(item_table.command("upgrade"), cwd=item_table.root,
                                env={**item_table.env, "AFTER_BACKFILL": str(marker), "BATCH_SIZE": "10"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and migrator.poll() is None:
        time.sleep(0.02)
    assert marker.exists(), migrator.communicate(timeout=60)[1]
    migrator.send_signal(how)
    _, stderr = migrator.communicate(timeout=60)

    if how == signal.SIGTERM:
        assert migrator.returncode == 143
        [line] = [line for line in stderr.splitlines() if "terminated" in line]
        assert f"revision {BACKFILL_REV} stopped after its backfill of item committed 50 of 50 rows" in line
        assert "upgrade resumes it" in line and "Traceback" not in stderr
    else:
        assert migrator.returncode == -signal.SIGKILL
    assert query(item_table.url, "SELECT version_num FROM alembic_version") == [(TABLE_REV,)]
    assert [(row["done"], row["total"]) for row in progress_rows(item_table.url)] == [(50, 50)]
    status = item_table.run("status")
    assert status.returncode == 1 and f"backfill item ({BACKFILL_REV}): 50 of 50 rows" in status.stdout

    again = item_table.run("upgrade")
    assert again.returncode == 0, again.stderr
    assert f"applied  {BACKFILL_REV}" in again.stdout
    assert wrong_rows(item_table.url) == 0 and progress_rows(item_table.url) == []
    engine = engine_for(item_table.url)
    try:
        indexes = {index["name"] for index in sa.inspect(engine).get_indexes("item")}
    finally:
        engine.dispose()
    assert "ix_item_slug" in indexes
    assert item_table.run("status").returncode == 0


def test_a_stop_in_another_revision_is_not_told_as_the_interrupted_backfill(tmp_path: Path, sqlite_url: str) -> None:
    """An interrupted backfill's row stays until its revision runs again; a stop in another
    revision meanwhile (here the table's own downgrade) is that revision's rollback, not a
    backfill that "committed 50 of 50 rows"."""
    root = project(tmp_path / "project")
    table = root / "alembic" / "versions" / "item.py"
    table.write_text(table.read_text().replace(
        'op.drop_table("item")',
        '__import__("pathlib").Path(__import__("os").environ["DOWNGRADING"]).write_text("now")\n'
        '    __import__("time").sleep(120)\n    op.drop_table("item")'))
    runner = Project(root, sqlite_url)
    assert runner.run("upgrade", TABLE_REV).returncode == 0
    fill(sqlite_url, 50)

    after = tmp_path / "after-backfill"
    assert f"revision {BACKFILL_REV} stopped after its backfill" in stopped(
        runner, "upgrade", marker=after, AFTER_BACKFILL=str(after), BATCH_SIZE="10")
    assert [row["done"] for row in progress_rows(sqlite_url)] == [50]

    downgrading = tmp_path / "downgrading"
    line = stopped(runner, "downgrade", "base", "--yes", marker=downgrading, DOWNGRADING=str(downgrading))
    assert "backfill" not in line and "rolled back" in line, line
    assert query(sqlite_url, "SELECT version_num FROM alembic_version") == [(TABLE_REV,)]
    assert query(sqlite_url, "SELECT count(*) FROM item") == [(50,)]


@pytest.mark.parametrize("table_rev, backfill_rev", [("f1e2d3c4b5a6", "0a1b2c3d4e5f"), ("0a1b2c3d4e5f", "f1e2d3c4b5a6")],
                         ids=["failing-id-sorts-after", "failing-id-sorts-before"])
def test_on_mysql_a_revision_failing_part_way_beside_a_stopped_backfill_awaits_repair(
    tmp_path: Path, mysql_url: str, table_rev: str, backfill_rev: str
) -> None:
    """Only a stop in a backfill's own revision is resumable as it stands; another revision
    failing part way meanwhile (here the table's downgrade, whose id sorts after the
    backfill's, or before it: revisions are matched, never ordered) is partial, listing what
    it ran, and awaits repair."""
    root = project(tmp_path / "project", table_rev, backfill_rev)
    table = root / "alembic" / "versions" / "item.py"
    table.write_text(table.read_text().replace(
        'op.drop_table("item")', 'op.execute("CREATE TABLE leftover (id INT)")\n'
                                 '    op.execute("DROP TABLE no_such_table")'))
    runner = Project(root, mysql_url)
    assert runner.run("upgrade", table_rev).returncode == 0
    fill(mysql_url, 50)
    after = tmp_path / "after-backfill"
    assert f"revision {backfill_rev} stopped after its backfill" in stopped(
        runner, "upgrade", marker=after, AFTER_BACKFILL=str(after), BATCH_SIZE="10")
    assert [row["done"] for row in progress_rows(mysql_url)] == [50]

    failed = runner.run("downgrade", "base", "--yes")
    assert failed.returncode == 1, failed.stderr
    (line,) = failed.stderr.strip().splitlines()
    assert "not transactional" in line and f"repair {table_rev} --applied or --reverted" in line, line
    ((outcome, detail),) = query(mysql_url, f"SELECT outcome, detail FROM {LEDGER} "
                                            f"WHERE revision = '{table_rev}' AND direction = 'downgrade'")
    assert outcome == "partial" and "ran before it failed: CREATE TABLE leftover" in detail, detail
    assert progress_rows(mysql_url) != []  # the backfill's own row waits for its revision


def stopped(runner: Project, *args: str, marker: Path, **env: str) -> str:
    """The line a migrator stopped by SIGTERM once ``marker`` exists says about the stop."""
    migrator = subprocess.Popen(runner.command(*args), cwd=runner.root, env={**runner.env, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and migrator.poll() is None:
        time.sleep(0.02)
    assert marker.exists(), migrator.communicate(timeout=60)[1]
    migrator.send_signal(signal.SIGTERM)
    _, stderr = migrator.communicate(timeout=60)
    assert migrator.returncode == 143, stderr
    [line] = [line for line in stderr.splitlines() if "terminated" in line]
    return line


def test_progress_on_stderr_rows_rate_and_time_left_and_quiet_silences_it(item_table: Project) -> None:
    fill(item_table.url, 30_000)
    quiet = item_table.run("-q", "upgrade", BATCH_SIZE="1000")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == ""
    assert wrong_rows(item_table.url) == 0

    item_table.run("downgrade", TABLE_REV)
    loud = item_table.run("upgrade", BATCH_SIZE="1000")
    assert loud.returncode == 0, loud.stderr
    lines = loud.stderr.splitlines()
    # Not a terminal: the first batch, then a line every few seconds, and the end; never one per batch.
    assert lines[0].startswith(f"mypkg-migrate: backfill item ({BACKFILL_REV}): 1,000 of 30,000 rows (3%), ")
    assert "rows/s" in lines[0] and " left" in lines[0]
    assert lines[-1].startswith(f"mypkg-migrate: backfill item ({BACKFILL_REV}): 30,000 of 30,000 rows (100%)")
    assert len(lines) < 30

    # As JSON events (docs/observability.md): the first batch, every few seconds, the end
    # (one database is enough: the events are emitted by the same code on every one).
    if not item_table.url.startswith("sqlite"):
        return
    item_table.run("downgrade", TABLE_REV)
    logged = item_table.run("--log-format", "json", "upgrade", BATCH_SIZE="1000")
    assert logged.returncode == 0, logged.stderr
    events = [json.loads(line) for line in logged.stderr.splitlines()]
    progress = [(e["revision"], e["table"], e["done"], e["total"]) for e in events if e["event"] == "backfill.progress"]
    assert progress[0] == (BACKFILL_REV, "item", 1000, 30_000) and progress[-1] == (BACKFILL_REV, "item", 30_000, 30_000)
    assert len(progress) < 30 and events[-1]["event"] == "command.end"


def test_without_a_batch_size_a_batch_is_the_documented_10000_keys(tmp_path: Path) -> None:
    """docs/authors.md: ``batch_size`` keys at a time, 10,000 unless the revision says: 10,001
    rows are two batches, the first of 10,000."""
    import re

    root = project(tmp_path / "project")
    slug = root / "alembic" / "versions" / "slug.py"
    text, count = re.subn(r',\s*batch_size=int\(os\.environ\.get\("BATCH_SIZE", "10000"\)\)\)', ")", slug.read_text())
    assert count == 1
    slug.write_text(text)
    runner = Project(root, f"sqlite:///{tmp_path / 'x.db'}")
    assert runner.run("upgrade", TABLE_REV).returncode == 0
    fill(runner.url, 10_001)
    logged = runner.run("--log-format", "json", "upgrade")
    assert logged.returncode == 0, logged.stderr
    done = [e["done"] for e in map(json.loads, logged.stderr.splitlines()) if e["event"] == "backfill.progress"]
    assert done == [10_000, 10_001]
    assert wrong_rows(runner.url) == 0


def test_the_api_hands_progress_to_a_callback_and_prints_nothing(item_table: Project) -> None:
    fill(item_table.url, 5_000)
    script = (
        "import json, time, mypkg\n"
        "seen = []\n"
        "started = time.perf_counter()\n"
        "mypkg.upgrade(on_progress=seen.append)\n"
        "wall = time.perf_counter() - started\n"
        "times = [p.seconds for p in seen]\n"
        "assert 0 < times[0] and times == sorted(times) and times[-1] <= wall, (times, wall)\n"
        "assert all(abs(p.rate - p.done / p.seconds) < 1e-6 for p in seen)\n"
        "print(json.dumps([[p.done, p.total, p.rate > 0] for p in seen]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=item_table.root, capture_output=True, text=True,
                            env={**item_table.env, "BATCH_SIZE": "1000"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    seen = json.loads(result.stdout)
    assert [done for done, _, _ in seen] == [1000, 2000, 3000, 4000, 5000, 5000]
    assert all(total == 5000 and fast for _, total, fast in seen)


def test_plain_alembic_runs_the_same_backfill_with_progress(item_table: Project) -> None:
    fill(item_table.url, 3_000)
    result = item_table.run("upgrade", "head", module="alembic", BATCH_SIZE="1000")
    assert result.returncode == 0, result.stderr
    assert f"backfill item ({BACKFILL_REV}): 3,000 of 3,000 rows (100%)" in result.stderr
    assert wrong_rows(item_table.url) == 0
    assert progress_rows(item_table.url) == []


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_batches_of_one_row_each_are_a_batch_size_like_any_other(item_table: Project) -> None:
    fill(item_table.url, 3)
    done = item_table.run("upgrade", BATCH_SIZE="1")
    assert done.returncode == 0, done.stderr
    assert wrong_rows(item_table.url) == 0 and progress_rows(item_table.url) == []
    assert f"backfill item ({BACKFILL_REV}): 3 of 3 rows (100%)" in done.stderr


@pytest.mark.parametrize("database", ["sqlite", "mysql"], indirect=True)  # transactional DDL, and not
def test_a_column_the_table_lacks_is_named_in_one_line(item_table: Project) -> None:
    fill(item_table.url, 3)
    done = item_table.run("upgrade", BACKFILL_COLUMN="colour")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert f"revision {BACKFILL_REV} (item slug) failed: backfill: item has no column 'colour'; " in line, line
    if item_table.url.startswith("mysql"):  # the column added before it stays: DDL is not transactional
        assert f"repair {BACKFILL_REV} --applied or --reverted" in line, line
    else:
        assert line.endswith(f"is at {TABLE_REV} (item table)"), line


def test_a_failing_batch_keeps_the_batches_before_it_and_says_so_in_one_line(item_table: Project) -> None:
    url = item_table.url
    fill(url, 5_000)
    # A trigger refuses the 3,500th row's new value, as a constraint would.
    engine = engine_for(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE item SET name = 'Refused-3500' WHERE id = 3500")
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE ON item WHEN NEW.name LIKE 'Refused%' "
                "BEGIN SELECT RAISE(ABORT, 'row 3500 refused by a trigger'); END"
            )
        elif engine.dialect.name in ("mysql", "mariadb"):
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE UPDATE ON item FOR EACH ROW BEGIN "
                "IF NEW.name LIKE 'Refused%%' THEN SIGNAL SQLSTATE '45000' "
                "SET MESSAGE_TEXT = 'row 3500 refused by a trigger'; END IF; END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF starts_with(NEW.name, 'Refused') THEN RAISE EXCEPTION 'row 3500 refused by a trigger'; END IF; "
                "RETURN NEW; END $$"
            )
            connection.exec_driver_sql("CREATE TRIGGER refuse BEFORE UPDATE ON item FOR EACH ROW EXECUTE FUNCTION refuse()")
    failed = item_table.run("upgrade", BATCH_SIZE="1000")
    assert failed.returncode == 1
    [line] = failed.stderr.splitlines()[-1:]
    assert f"revision {BACKFILL_REV} (item slug) failed" in line and "row 3500 refused by a trigger" in line
    assert f"is at {TABLE_REV}" in line
    assert "Traceback" not in failed.stderr
    assert query(url, "SELECT count(*) FROM item WHERE slug IS NOT NULL")[0][0] == 3000
    assert progress_rows(url)[0]["done"] == 3000

    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE item SET name = 'Name-3500' WHERE id = 3500")  # not refused
    engine.dispose()
    result = Path(item_table.root) / "backfill-result.txt"
    fixed = item_table.run("upgrade", BATCH_SIZE="1000", BACKFILL_RESULT=str(result))
    assert fixed.returncode == 0, fixed.stderr
    assert wrong_rows(url) == 0
    assert result.read_text() == "2000"  # this run's rows: it continued after the 3,000 done
    assert "4,000 of 5,000 rows (80%)" in fixed.stderr  # the total counts both runs
    assert "5,000 of 5,000 rows (100%)" in fixed.stderr
    assert progress_rows(url) == []  # the first run's row was carried over, not left behind


def test_offline_sql_writes_one_plain_update(tmp_path: Path) -> None:
    runner = Project(project(tmp_path / "project"), f"sqlite:///{tmp_path / 'x.db'}")
    returned = tmp_path / "returned.txt"
    result = runner.run("upgrade", "--sql", f"{TABLE_REV}:{BACKFILL_REV}", BACKFILL_RESULT=str(returned))
    assert result.returncode == 0, result.stderr
    assert "UPDATE item SET slug=lower(name) WHERE slug IS NULL;" in result.stdout
    assert not (tmp_path / "x.db").exists()
    assert returned.read_text() == "0"  # no row was updated: the SQL is for someone to run


def test_on_a_terminal_progress_is_one_line_rewritten_in_place(tmp_path: Path) -> None:
    import pty

    runner = Project(project(tmp_path / "project"), f"sqlite:///{tmp_path / 'tty.db'}")
    assert runner.run("upgrade", TABLE_REV).returncode == 0
    fill(runner.url, 20_000)
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(runner.command("upgrade"), cwd=runner.root, env={**runner.env, "BATCH_SIZE": "1000"},
                                   stdout=subprocess.DEVNULL, stderr=terminal)
        os.close(terminal)
        written = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            written += chunk
        assert process.wait(timeout=120) == 0
    finally:
        os.close(controller)
    text = written.decode().replace("\r\n", "\n")  # the terminal's own newline translation
    assert text.count("\r") >= 20, text  # a redraw per batch
    assert text.count("\n") == 1 and text.endswith("\n")  # ended once, at the end
    assert "20,000 of 20,000 rows (100%)" in text.rsplit("\r", 1)[-1]


def test_lint_reads_a_backfill_as_its_own_transactions_not_data_with_ddl(tmp_path: Path) -> None:
    runner = Project(project(tmp_path / "project"), f"sqlite:///{tmp_path / 'x.db'}")
    offline = runner.run("upgrade", "--sql", f"{TABLE_REV}:{BACKFILL_REV}", MYPKG_DATABASE_URL="postgresql://app@/app")
    assert offline.returncode == 0, offline.stderr
    before, _, after = offline.stdout.partition("UPDATE item SET slug=lower(name) WHERE slug IS NULL;")
    assert "ALTER TABLE item ADD COLUMN slug" in before and before.rstrip().endswith("COMMIT;")
    linted = runner.run("lint", "--dialect", "postgresql", f"{TABLE_REV}:{BACKFILL_REV}")
    assert linted.returncode in (0, 1), linted.stderr
    assert BACKFILL_REV in linted.stdout or linted.returncode == 0
    assert "data-with-ddl" not in linted.stdout


@pytest.mark.parametrize("key, told", [("", "has none"), ("PRIMARY KEY (a, b)", "has 2 columns in it")])
def test_a_table_without_a_single_column_primary_key_is_refused_in_one_line(
    tmp_path: Path, key: str, told: str
) -> None:
    root = histories.project_with(tmp_path / "project", [
        histories.script("pairs.py", "c1c1c1c1c1c1", None, "pairs",
                         upgrade=f'op.execute("CREATE TABLE pairs (a INTEGER NOT NULL, b INTEGER NOT NULL'
                                 f'{", " + key if key else ""})")\n'
                                 'from mypkg.batch import backfill\n'
                                 'backfill("pairs", values={"b": 0})',
                         downgrade='op.drop_table("pairs")'),
    ])
    runner = Project(root, f"sqlite:///{tmp_path / 'pairs.db'}")
    result = runner.run("upgrade")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mypkg-migrate: error: revision c1c1c1c1c1c1 (pairs) failed: backfill walks a table by its primary key: "
        f"pairs {told}; it needs exactly one; sqlite:///{tmp_path / 'pairs.db'} is at base (empty)"
    ]


def test_sqlite_batches_beside_an_application_writing(tmp_path: Path) -> None:
    """WAL mode, an application committing every few milliseconds: every batch waits its turn
    for the write lock (the busy timeout) and none fails. (Each batch begins BEGIN IMMEDIATE;
    its first statement writes, so a deferred BEGIN would behave alike but for a window inside
    one statement: the batch's bound is read before its transaction, on purpose.)"""
    import sqlite3

    from tests.runtime.test_platforms import APPLICATION

    path = tmp_path / "app.db"
    url = f"sqlite:///{path}"
    runner = Project(project(tmp_path / "project"), url)
    assert runner.run("upgrade", TABLE_REV).returncode == 0
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
    fill(url, 3000)
    stop = tmp_path / "stop"
    app = subprocess.Popen([sys.executable, "-c", APPLICATION, str(path), str(stop)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline().strip() == "writing"
        result = runner.run("upgrade", BATCH_SIZE="25")  # 120 batches among the application's writes
    finally:
        stop.touch()
        out, err = app.communicate(timeout=60)
    assert result.returncode == 0, result.stderr
    written, errors = (int(n) for n in out.split())
    assert (errors, err) == (0, "") and written > 20
    assert wrong_rows(url) == 0
