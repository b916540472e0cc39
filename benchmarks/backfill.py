"""mypkg.batch.backfill against the batched loop a team would write by hand.

    .venv/bin/python benchmarks/backfill.py [--rows 1000000] [--repeat 3] [--batch-size 10000]

Both are the same revision (add a column, fill it from another in batches of primary
keys, each batch its own transaction, then index it) run by ``mypkg-migrate upgrade``
on a copy of the same database: one calls ``backfill()``, the other is the hand-written
keyset loop in an autocommit block, with no progress row and no progress output. SQLite,
and PostgreSQL on a throwaway server (tests/servers/postgresql.py). Runs are interleaved; the
table prints medians of wall time and the migrator process's peak RSS, and the ratio.
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

HEADER = '''"""{message}

Revision ID: {revision}
Revises: {down}
"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = None
depends_on = None

'''
TABLE = '''
def upgrade() -> None:
    op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(64), nullable=False))


def downgrade() -> None:
    op.drop_table("item")
'''
WITH_BACKFILL = '''
def upgrade() -> None:
    from mypkg.batch import backfill

    op.add_column("item", sa.Column("slug", sa.String(64)))
    backfill("item", values={{"slug": sa.func.lower(sa.column("name"))}}, where="slug IS NULL", batch_size={batch})
    op.create_index("ix_item_slug", "item", ["slug"])


def downgrade() -> None:
    pass
'''
BY_HAND = '''
def upgrade() -> None:
    op.add_column("item", sa.Column("slug", sa.String(64)))
    context = op.get_context()
    begin = "BEGIN IMMEDIATE" if context.dialect.name == "sqlite" else "BEGIN"
    with context.autocommit_block():
        connection = context.connection
        last = 0
        while True:
            upper = connection.execute(
                sa.text("SELECT id FROM item WHERE id > :last ORDER BY id LIMIT 1 OFFSET {offset}"), {{"last": last}}
            ).scalar()
            connection.exec_driver_sql(begin)
            bound = "" if upper is None else " AND id <= :upper"
            connection.execute(
                sa.text(f"UPDATE item SET slug = lower(name) WHERE id > :last{{bound}} AND slug IS NULL"),
                {{"last": last, "upper": upper}},
            )
            connection.exec_driver_sql("COMMIT")
            if upper is None:
                break
            last = upper
    op.create_index("ix_item_slug", "item", ["slug"])


def downgrade() -> None:
    pass
'''


def project(root: Path, body: str) -> Path:
    """A source checkout of the package whose history is the item table and ``body``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "mypkg", root / "mypkg", ignore=ignore)
    shutil.copytree(ROOT / "alembic", root / "alembic", ignore=ignore)
    releases = root / "mypkg" / "releases.py"
    releases.write_text(releases.read_text().replace('"0.1.0": "1341fe34ff84",', ""))
    versions = root / "alembic" / "versions"
    shutil.rmtree(versions)
    versions.mkdir()
    (versions / "item.py").write_text(HEADER.format(message="item", revision="a0000000000a", down=None) + TABLE)
    (versions / "slug.py").write_text(HEADER.format(message="slug", revision="b0000000000b", down="a0000000000a") + body)
    return root


def migrate(root: Path, url: str, *args: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ``mypkg-migrate`` run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(PYTHONPATH=str(root))
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "mypkg", "--url", url, "-q", *args], cwd=root, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    error = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, error[-500:]
    return seconds, usage.ru_maxrss / 1024


class Database:
    """A database at the item table with ``rows`` rows, and a fresh copy of it per run."""

    def __init__(self, kind: str, rows: int, scratch: Path, server: object | None, table_project: Path) -> None:
        self.kind, self.rows, self.scratch, self.server = kind, rows, scratch, server
        if kind == "sqlite":
            self.template = scratch / "template.db"
            url = f"sqlite:///{self.template}"
        else:
            url = server.create_database()  # type: ignore[union-attr]
            from sqlalchemy.engine import make_url

            self.template_name = make_url(url).database
        migrate(table_project, url, "upgrade", "a0000000000a")
        self._fill(url)
        self.template_url = url

    def _fill(self, url: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        series = (f"SELECT i, 'Name-' || i FROM generate_series(1, {self.rows}) AS i" if self.kind == "postgresql"
                  else f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {self.rows}) "
                       "SELECT i, 'Name-' || i FROM n")
        with engine.begin() as connection:
            connection.exec_driver_sql(f"INSERT INTO item (id, name) {series}")
        engine.dispose()

    def copy(self, name: str) -> str:
        if self.kind == "sqlite":
            target = self.scratch / f"{name}.db"
            shutil.copy(self.template, target)
            return f"sqlite:///{target}"
        import psycopg

        server = self.server
        with psycopg.connect(host=str(server.socket_dir), user=server.user, dbname="postgres",  # type: ignore[union-attr]
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}"')
        return self.template_url.replace(f"/{self.template_name}?", f"/{name}?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-backfill-") as tmp:
        scratch = Path(tmp)
        projects = {
            "backfill()": project(scratch / "with", WITH_BACKFILL.format(batch=args.batch_size)),
            "by hand": project(scratch / "hand", BY_HAND.format(offset=args.batch_size - 1)),
        }
        print(f"{args.rows:,} rows, batches of {args.batch_size:,}, medians of {args.repeat}")
        print(f"{'database':<12}{'variant':<12}{'seconds':>9}{'peak MB':>9}{'ratio':>7}")
        for kind in args.databases.split(","):
            server = None
            if kind == "postgresql":
                from tests.servers.postgresql import PostgresServer

                server = PostgresServer().start()
            try:
                database = Database(kind, args.rows, scratch, server, projects["by hand"])
                samples: dict[str, list[tuple[float, float]]] = {name: [] for name in projects}
                for round_ in range(args.repeat):
                    for name, root in projects.items():  # interleaved
                        url = database.copy(f"run_{round_}_{len(samples[name])}_{'w' if 'fill' in name else 'h'}")
                        samples[name].append(migrate(root, url, "upgrade"))
                hand = statistics.median(seconds for seconds, _ in samples["by hand"])
                for name, runs in samples.items():
                    seconds = statistics.median(s for s, _ in runs)
                    peak = statistics.median(m for _, m in runs)
                    print(f"{kind:<12}{name:<12}{seconds:>9.2f}{peak:>9.0f}{seconds / hand:>7.2f}", flush=True)
            finally:
                if server is not None:
                    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
