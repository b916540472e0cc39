"""Background backfills (mypkg.batch.backfill(..., background=True)): queued by a revision
while ``upgrade`` goes on, run by ``backfill run`` workers batch by batch, required by a later
revision, paused, resumed, cancelled, failed and fixed; killed workers (SIGKILL, SIGTERM, at
random moments, three at once) lose and double nothing. SQLite, PostgreSQL and MariaDB,
through the command as users run it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.history import histories
from tests.observe.test_json_output import valid
from tests.servers.postgresql import PostgresServer

A, B, C = "bg000000000a", "bg000000000b", "bg000000000c"


def notes(rows: int, *, hits: bool = False, check: str | None = None) -> str:
    """A table of ``rows`` notes (built in the database: no row passes through Python)."""
    extra = ', sa.Column("hits", sa.Integer, nullable=False, server_default="0")' if hits else ""
    constraint = f", sa.CheckConstraint({check!r}, name='slug')" if check else ""  # ck_note_slug
    return f'''
op.create_table("note", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.String(50)),
                sa.Column("slug", sa.String(50)){extra}{constraint})
body = "CONCAT('Body ', i)" if op.get_context().dialect.name in ("mysql", "mariadb") else "'Body ' || i"
if op.get_context().dialect.name in ("mysql", "mariadb"):
    op.execute("SET SESSION max_recursive_iterations = 10000000")  # MariaDB's bound: 1,000 rows
op.execute("INSERT INTO note (id, body) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
           "WHERE i < {rows}) SELECT i, " + body + " FROM n")
'''


def project(root: Path, rows: int, *, backfill: str | None = None, batch: int = 1000, **table: object) -> Path:
    queued = backfill or 'values={"slug": sa.func.lower(sa.column("body"))}, where="slug IS NULL"'
    return histories.project_with(root, [
        histories.script("a.py", A, None, "notes", notes(rows, **table), 'op.drop_table("note")'),  # type: ignore[arg-type]
        histories.script("b.py", B, A, "slugs in the background",
                         f'from mypkg.batch import backfill\nbackfill("note", {queued}, batch_size={batch}, '
                         'background=True)'),
        histories.script("c.py", C, B, "index the slugs",
                         f'from mypkg.batch import require_backfilled\nrequire_backfilled("{B}")\n'
                         'op.create_index("ix_note_slug", "note", ["slug"])', 'op.drop_index("ix_note_slug", "note")'),
    ])


def mig(root: Path, url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    return subprocess.run([sys.executable, "-m", "mypkg", "--url", url, *args], cwd=root, capture_output=True,
                          text=True, timeout=timeout, env={**clean, "PYTHONPATH": str(root)})


def start(root: Path, url: str, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """A worker in the background; its stderr appended to ``log``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    with (log or Path(os.devnull)).open("ab") as stderr:
        return subprocess.Popen([sys.executable, "-m", "mypkg", "--url", url, "backfill", "run", *args], cwd=root,
                                stdout=subprocess.DEVNULL, stderr=stderr, env={**clean, "PYTHONPATH": str(root)})


def scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue(f"{request.param}_url")


def test_a_queued_backfill_lets_upgrade_go_on_and_a_later_revision_waits_for_it(url: str, tmp_path: Path) -> None:
    root = project(tmp_path / "project", 5000)
    first = mig(root, url, "upgrade")
    # The revision that needs it stops the upgrade: one line naming it and the way on.
    assert first.returncode == 1 and first.stderr.count("\n") == 1, first.stderr
    assert f"revision {C} (index the slugs) failed: it needs the background backfill {B}:note finished, which " \
           "is queued at 0 of 5,000 rows: mypkg-migrate backfill run --once (or its worker) finishes it" in first.stderr
    assert f"is at {B} (slugs in the background)" in first.stderr and "Traceback" not in first.stderr
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NULL") == 5000  # queued, not run
    status = mig(root, url, "status")
    assert f"backfill: {B}:note  0 of 5,000 rows (0%)  [queued]; mypkg-migrate backfill run works on it" \
        in status.stdout, status.stdout
    as_json = valid(json.loads(mig(root, url, "status", "--json").stdout), "status")
    assert [(q["name"], q["state"], q["done"], q["total"]) for q in as_json["background"]] == \
        [(f"{B}:note", "queued", 0, 5000)]
    listed = valid(json.loads(mig(root, url, "backfill", "status", "--json").stdout), "backfill")
    assert [(q["name"], q["seconds"], q["rate"], q["eta"]) for q in listed["backfills"]] == [(f"{B}:note", 0, 0, None)]
    ran = mig(root, url, "backfill", "run", "--once")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("5000 row(s) updated; 0 background backfill(s) left")
    # In a log: the first batch's line, then the last figures once it finished, not a line a batch.
    told = [line for line in ran.stderr.splitlines() if line.startswith(f"mypkg-migrate: backfill note ({B})")]
    assert len(told) == 2 and "1,000 of 5,000 rows (20%)" in told[0] and "5,000 of 5,000 rows (100%)" in told[1], told
    assert valid(json.loads(mig(root, url, "backfill", "run", "--once", "--json").stdout), "backfill")["rows"] == 0
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NULL OR slug <> lower(body)") == 0
    done = mig(root, url, "upgrade")
    assert done.returncode == 0 and f"applied  {C}" in done.stdout, done.stderr
    finished = valid(json.loads(mig(root, url, "backfill", "status", "--json").stdout), "backfill")["backfills"]
    assert [(q["state"], q["done"]) for q in finished] == [("finished", 5000)]
    spent = finished[0]["seconds"]  # the workers' time, from nothing: the rate is the rows over it
    assert 0 < spent < 60 and finished[0]["rate"] == pytest.approx(5000 / spent, rel=0.1)  # seconds shown to the ms
    assert "backfill:" not in mig(root, url, "status").stdout


def test_one_batch_or_less_runs_at_once_and_nothing_waits(url: str, tmp_path: Path) -> None:
    root = project(tmp_path / "project", 800)
    done = mig(root, url, "upgrade")
    assert done.returncode == 0, done.stderr
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NULL") == 0
    assert json.loads(mig(root, url, "backfill", "status", "--json").stdout)["backfills"] == []


def test_paused_cancelled_and_failed_backfills_are_told_and_taken_up_again(url: str, tmp_path: Path) -> None:
    root = project(tmp_path / "project", 3000, check="slug IS NULL OR slug <> 'body 2500'")
    assert mig(root, url, "upgrade", B).returncode == 0
    paused = mig(root, url, "backfill", "pause", B)
    assert paused.returncode == 0 and "[paused]" in paused.stdout, paused.stderr
    idle = mig(root, url, "backfill", "run", "--once")
    assert idle.returncode == 0 and idle.stdout.startswith("0 row(s) updated; 1 background backfill(s) left")
    refused = mig(root, url, "upgrade")
    assert refused.returncode == 1 and f"which is paused at 0 of 3,000 rows: mypkg-migrate backfill resume " \
        f"{B}:note, then mypkg-migrate backfill run --once" in refused.stderr, refused.stderr
    assert "[cancelled]" in mig(root, url, "backfill", "cancel", f"{B}:note").stdout
    assert "which was cancelled" in mig(root, url, "upgrade").stderr
    assert mig(root, url, "backfill", "resume", B[:6]).returncode == 0  # a prefix names it
    # The batch holding row 2500 breaks the CHECK: rolled back, marked failed, the error kept.
    failed = mig(root, url, "backfill", "run", "--once")
    assert failed.returncode == 1 and failed.stderr.strip().splitlines()[-1].startswith(
        f"mypkg-migrate: error: background backfill {B}:note failed"), failed.stderr
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NOT NULL") == 2000  # the batches before it
    told = json.loads(mig(root, url, "backfill", "status", "--json").stdout)["backfills"][0]
    assert told["state"] == "failed" and "constraint" in (told["error"] or "").lower(), told
    unknown = mig(root, url, "backfill", "pause", "nope")
    assert unknown.returncode == 2 and "no background backfill 'nope' (known: " in unknown.stderr
    # Fixed by hand (the constraint dropped), resumed, run: finished, every row once.
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        if url.startswith("sqlite"):
            connection.exec_driver_sql("UPDATE note SET body = 'Body x' WHERE id = 2500")
        else:
            connection.exec_driver_sql("ALTER TABLE note DROP CONSTRAINT ck_note_slug")
    engine.dispose()
    assert mig(root, url, "backfill", "resume", B).returncode == 0
    assert mig(root, url, "backfill", "run", "--once").returncode == 0
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NULL") == 0
    assert mig(root, url, "upgrade").returncode == 0


def test_workers_killed_at_random_moments_lose_and_double_nothing(url: str, tmp_path: Path) -> None:
    """Every row's ``hits`` goes up by one per batch that touches it, with no ``where`` to make
    a second pass harmless: three workers at once, SIGKILL and SIGTERM at random moments,
    started again, until none is left: every row has exactly 1."""
    rows = 20000
    root = project(tmp_path / "project", rows, hits=True, batch=200,
                   backfill='values={"hits": sa.column("hits") + 1}')
    assert mig(root, url, "upgrade", B).returncode == 0
    chance = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "") + url)
    workers = [start(root, url, "--pause", "0.1") for _ in range(3)]
    kills = 0
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            time.sleep(chance.uniform(0.05, 0.4))
            left = scalar(url, "SELECT count(*) FROM note WHERE hits = 0")
            if left == 0:
                break
            index = chance.randrange(len(workers))
            workers[index].send_signal(signal.SIGKILL if chance.random() < 0.7 else signal.SIGTERM)
            workers[index].wait(timeout=30)
            kills += 1
            workers[index] = start(root, url, "--pause", "0.1")
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=30)
    drained = mig(root, url, "backfill", "run", "--once")
    assert drained.returncode == 0, drained.stderr
    assert kills >= 3
    assert scalar(url, "SELECT count(*) FROM note WHERE hits <> 1") == 0
    assert scalar(url, "SELECT sum(hits) FROM note") == rows
    told = json.loads(mig(root, url, "backfill", "status", "--json").stdout)["backfills"]
    assert [(q["state"], q["done"]) for q in told] == [("finished", rows)]


def test_the_batch_size_follows_the_time_a_batch_should_take(tmp_path: Path) -> None:
    """batch_seconds far above what a batch of 10 rows takes: each batch doubles (at most), so
    5,000 rows take a dozen batches, not 500; each batch's event tells its size."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    root = project(tmp_path / "project", 5000, batch=10)
    assert mig(root, url, "upgrade", B).returncode == 0
    code = ("import json, sys\nimport mypkg.batch\nfrom mypkg.migrate import events\nsizes = []\n"
            "with events.listeners(lambda event, fields: sizes.append(fields.get('batch'))):\n"
            "    rows = mypkg.batch.run_background(sys.argv[1], batch_seconds=5)\n"
            "print(json.dumps([rows, sizes]))")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    done = subprocess.run([sys.executable, "-c", code, url], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**clean, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    rows, sizes = json.loads(done.stdout)
    assert rows == 5000 and sizes[:5] == [10, 20, 40, 80, 160] and len(sizes) <= 12, sizes
    assert scalar(url, "SELECT count(*) FROM note WHERE slug IS NULL") == 0


def test_a_fleet_of_tenant_schemas_runs_every_tenants_backfills(postgresql_url: str, tmp_path: Path) -> None:
    """``fleet backfill run --schemas``: each tenant's queued backfills, to the end, in worker
    processes; run again, nothing left: unchanged."""
    root = project(tmp_path / "project", 3000)
    tenants = ["tenant_a", "tenant_b", "tenant_c"]
    for tenant in tenants:
        assert mig(root, postgresql_url, "--schema", tenant, "upgrade", B).returncode == 0
    ran = mig(root, postgresql_url, "fleet", "backfill", "run", "--schemas", "tenant_*", "--batch-seconds", "0.5",
              "--json")
    assert ran.returncode == 0, ran.stderr
    report = valid(json.loads(ran.stdout), "fleet")
    assert [row["outcome"] for row in report["targets"]] == ["migrated"] * 3
    for tenant in tenants:
        assert scalar(postgresql_url, f"SELECT count(*) FROM {tenant}.note WHERE slug IS NULL") == 0
    again = mig(root, postgresql_url, "fleet", "backfill", "run", "--schemas", "tenant_*")
    assert again.returncode == 0 and "fleet backfill run: 3 target(s): 3 unchanged" in again.stdout, again.stdout
    wrong = mig(root, postgresql_url, "fleet", "backfill", "--schemas", "tenant_*")
    assert wrong.returncode == 2 and "fleet backfill run" in wrong.stderr
    mixed = mig(root, postgresql_url, "fleet", "upgrade", "--schemas", "tenant_*", "--pause", "1")
    assert mixed.returncode == 2 and "are for fleet backfill run" in mixed.stderr
