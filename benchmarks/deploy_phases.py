"""Deploy phases' costs: a rename's triggers on the running application's writes, and the
new release's gate (``status --phase pre``) against ``status``.

    .venv/bin/python benchmarks/deploy_phases.py [--writes 2000] [--repeat 5] [--databases sqlite,postgresql,mysql]

During a rolling deploy (docs/deploying.md) ``mypkg.phases.rename_column("note", "body",
"content")`` keeps both columns in step with triggers. Two databases are built by
``mypkg-migrate upgrade`` from the shipped history plus one revision each: that rename, or
the same two columns added by hand with no trigger (the write's floor: the same row, the
same columns). The old release's writes are then timed on each through the driver alone,
autocommitted one by one: a single-row INSERT naming ``body``, and a single-row UPDATE of
``body``. Rounds interleaved; the table prints the median microseconds per write and the
ratio with triggers to without (goal: at most 1.5x). Then, on the database with triggers (at
head), ``mypkg-migrate status --phase pre`` and ``status`` are timed as processes, interleaved
(goal: the gate costs what ``status`` costs: both on the fast path). SQLite files; PostgreSQL
and MariaDB on throwaway servers on unix sockets (tests/servers/).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

HEAD = "1341fe34ff84"
REVISION = '''"""content beside body"""
import sqlalchemy as sa
from alembic import op

revision = "b0000000000c"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''
WITH_TRIGGERS = '''    from mypkg.phases import rename_column

    rename_column("note", "body", "content")'''
WITHOUT = '''    with op.batch_alter_table("note") as batch:
        batch.add_column(sa.Column("content", sa.Text(), nullable=True))
        batch.alter_column("body", existing_type=sa.Text(), nullable=True)'''
#: The goal of issue "Deploy phases": the triggers at most this factor on a single-row write.
GOAL = 1.5


def project(root: Path, body: str) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "mypkg", root / "mypkg", ignore=ignore)
    shutil.copytree(ROOT / "alembic", root / "alembic", ignore=ignore)
    (root / "alembic" / "versions" / "9999_content.py").write_text(REVISION.format(head=HEAD, body=body))
    return root


def migrate(root: Path, url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-m", "mypkg", "--url", url, "-q", "upgrade"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-800:]


def connect(kind: str, url: str):  # noqa: ANN201 - the driver's own connection, autocommitting
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if kind == "sqlite":
        import sqlite3

        return sqlite3.connect(parsed.database, isolation_level=None), "?"
    if kind == "postgresql":
        import psycopg

        return psycopg.connect(host=parsed.query["host"], user=parsed.username, dbname=parsed.database,
                               autocommit=True), "%s"
    import pymysql

    return pymysql.connect(unix_socket=parsed.query["unix_socket"], user=parsed.username, database=parsed.database,
                           autocommit=True), "%s"


def writes(kind: str, url: str, count: int, start: int) -> tuple[float, float]:
    """Median microseconds of one INSERT and of one UPDATE, each its own transaction."""
    connection, mark = connect(kind, url)
    inserts, updates = [], []
    try:
        cursor = connection.cursor()
        for i in range(start, start + count):
            began = time.perf_counter()
            cursor.execute(f"INSERT INTO note (id, my_table_id, body) VALUES ({mark}, 1, {mark})", (i, f"body {i}"))
            inserts.append(time.perf_counter() - began)
            began = time.perf_counter()
            cursor.execute(f"UPDATE note SET body = {mark} WHERE id = {mark}", (f"edited {i}", i))
            updates.append(time.perf_counter() - began)
    finally:
        connection.close()
    return statistics.median(inserts) * 1e6, statistics.median(updates) * 1e6


def gate_against_status(root: Path, url: str, count: int) -> tuple[float, float]:
    """Median seconds of ``status`` and of ``status --phase pre`` at head, as processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(PYTHONPATH=str(root))
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(count):
        for gate in (False, True):  # interleaved
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "mypkg", "--url", url, "status",
                                   *(["--phase", "pre"] if gate else [])], cwd=root, env=env, capture_output=True)
            times[gate].append(time.perf_counter() - began)
            assert done.returncode == 0, done.stderr
    return statistics.median(times[False]), statistics.median(times[True])


def database(kind: str, scratch: Path, server: object, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{scratch / f'{name}.db'}"
    return server.create_database()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000, help="writes of each kind per round")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgresql,mysql")
    args = parser.parse_args(argv)
    worst = 0.0
    gates: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-triggers-") as tmp:
        scratch = Path(tmp)
        projects = {"triggers": project(scratch / "with", WITH_TRIGGERS), "none": project(scratch / "without", WITHOUT)}
        print(f"{args.writes:,} single-row writes of each kind per round, medians over {args.repeat} rounds (µs)")
        print(f"{'database':<12}{'write':<8}{'no trigger':>11}{'triggers':>10}{'ratio':>7}")
        for kind in args.databases.split(","):
            server = None
            if kind == "postgresql":
                from tests.servers.postgresql import PostgresServer

                server = PostgresServer().start()
            elif kind == "mysql":
                from tests.servers.mariadb import MariaDBServer

                server = MariaDBServer().start()
            try:
                urls = {}
                for name, root in projects.items():
                    urls[name] = database(kind, scratch, server, f"{kind}_{name}")
                    migrate(root, urls[name])
                    connection, mark = connect(kind, urls[name])
                    connection.cursor().execute("INSERT INTO my_table (id, name, display_name) VALUES (1, 'a', 'a')")
                    connection.close()
                samples: dict[str, list[tuple[float, float]]] = {name: [] for name in projects}
                for round_ in range(args.repeat):
                    for name in projects:  # interleaved
                        samples[name].append(writes(kind, urls[name], args.writes, 1 + round_ * args.writes))
                for index, write in enumerate(("INSERT", "UPDATE")):
                    floor = statistics.median(s[index] for s in samples["none"])
                    cost = statistics.median(s[index] for s in samples["triggers"])
                    worst = max(worst, cost / floor)
                    print(f"{kind:<12}{write:<8}{floor:>11.0f}{cost:>10.0f}{cost / floor:>7.2f}", flush=True)
                gates.append((kind, *gate_against_status(projects["triggers"], urls["triggers"], args.repeat * 4)))
            finally:
                if server is not None:
                    server.stop()
    print(f"goal: triggers at most {GOAL}x a single-row write: {'met' if worst <= GOAL else 'MISSED'} "
          f"(worst {worst:.2f}x)")
    print(f"\n{'database':<12}{'status':>10}{'--phase pre':>13}{'ratio':>7}   (ms per process, medians)")
    for kind, plain, gate in gates:
        print(f"{kind:<12}{plain * 1000:>10.1f}{gate * 1000:>13.1f}{gate / plain:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
