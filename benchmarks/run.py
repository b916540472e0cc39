"""mypkg-migrate against plain Alembic, side by side, on the same scripts and databases.

Run from the source root, with the test environment's interpreter (the one ``.ci/run``
builds), so that both tools start from the same clean site-packages::

    .venv/bin/python benchmarks/run.py                 # the full run, a few minutes
    .venv/bin/python benchmarks/run.py --sizes 1,5 --repeat 1 --rows 1000   # a smoke run

For each N in --sizes it generates N linear synthetic revisions in a temporary copy of
the project, builds and installs that copy as a wheel (as users get it: with its
revision manifest), and times, interleaved, --repeat times, medians:

- fresh upgrade of a new SQLite file (mypkg-migrate: lock and ledger included),
- no-op upgrade at head, status / current at head (plain Alembic: ``alembic current``),
- ``--help``;

then a batch-mode migration (table copy) of a --rows SQLite table against the same
copy written by hand in SQL and against plain Alembic, with the start floor every
Alembic-based runner pays (Python plus the SQLAlchemy and Alembic imports), and a
batched backfill of --rows rows on PostgreSQL (a throwaway server, as the tests start
it), each with the migrator's peak RSS.
It prints a table, the ratios against each target, and writes JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.servers.postgresql: the same throwaway server as the tests

#: (measurement, N or None, limit, kind): ratio = mypkg / alembic, or seconds for "abs".
TARGETS = [
    ("noop_upgrade", 1000, 0.1, "ratio"),
    ("status", 1000, 0.1, "ratio"),
    ("fresh_upgrade", 200, 1.0, "ratio"),
    ("fresh_upgrade", 1000, 1.0, "ratio"),
    ("help", None, 0.1, "abs"),
    ("batch_copy", None, 1.5, "ratio"),
    ("batch_copy_rss_mb", None, 100.0, "abs"),
]

REVISION = '''\
"""synthetic revision {i}

Revision ID: {rev}
Revises: {parent}
"""
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {parent_repr}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("bench_{i}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("bench_{i}")
'''

BIG_TABLE = '''\
"""create big

Revision ID: big000000001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "big000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "big",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("big")
'''

BATCH_COPY = '''\
"""widen big.name: a table copy on SQLite

Revision ID: big000000002
Revises: big000000001
"""
import sqlalchemy as sa
from alembic import op

revision = "big000000002"
down_revision = "big000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("big", recreate="always") as batch:
        batch.alter_column("name", type_=sa.String(100), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("big", recreate="always") as batch:
        batch.alter_column("name", type_=sa.String(50), existing_nullable=False)
'''

IMPORT_FLOOR = "import sqlalchemy, alembic.op, alembic.context"

HAND_WRITTEN_COPY = """\
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.executescript('''
BEGIN;
CREATE TABLE _big_new (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, payload TEXT);
INSERT INTO _big_new (id, name, payload) SELECT id, name, payload FROM big;
DROP TABLE big;
ALTER TABLE _big_new RENAME TO big;
UPDATE alembic_version SET version_num = 'big000000002';
COMMIT;
''')
"""

BACKFILL = '''\
"""add big.name_length, backfilled in batches of {batch} rows

Revision ID: big000000003
Revises: big000000001
"""
import sqlalchemy as sa
from alembic import op

revision = "big000000003"
down_revision = "big000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("big", sa.Column("name_length", sa.Integer, nullable=True))
    bind = op.get_bind()
    top = bind.execute(sa.text("SELECT coalesce(max(id), 0) FROM big")).scalar()
    # Set-based batches by key range: no row is ever loaded into Python.
    for low in range(0, top + 1, {batch}):
        bind.execute(
            sa.text("UPDATE big SET name_length = length(name) WHERE id >= :low AND id < :high"),
            {{"low": low, "high": low + {batch}}},
        )


def downgrade() -> None:
    op.drop_column("big", "name_length")
'''


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int


def run(command: list[str], *, cwd: Path, env: dict[str, str]) -> Run:
    """Wall time and peak RSS of one child process (os.wait4: this child only)."""
    # stderr to a file, not a pipe: Alembic logs a line per revision, which would fill
    # a pipe nobody reads until the child exits, and deadlock.
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _pid, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip()[-500:]
            raise SystemExit(f"benchmark step failed ({' '.join(command)}): {tail}")
    return Run(elapsed, usage.ru_maxrss / 1024, code)


class Project:
    """A temporary copy of the project with synthetic revisions, installed as a wheel."""

    def __init__(self, root: Path, scripts: dict[str, str], before_build: Callable[[Path], None] | None = None) -> None:
        """``before_build(root)`` runs in the copy's source tree before its wheel is built
        (writing a checkpoint, say)."""
        self.root = root
        for name in ("mypkg", "alembic", "recipe"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("alembic.ini", "pyproject.toml", "hatch_build.py", "README.md", "LICENSE"):
            shutil.copy2(REPO / name, root / name)
        versions = root / "alembic" / "versions"
        shutil.rmtree(versions)
        versions.mkdir()
        for filename, text in scripts.items():
            (versions / filename).write_text(text)
        # The release map names mypkg's own revisions, which this history does not have
        # (the wheel build refuses a release naming no revision).
        releases = root / "mypkg" / "releases.py"
        releases.write_text(re.sub(r"(?s)RELEASES: dict\[str, str\] = \{.*?\}", "RELEASES: dict[str, str] = {}", releases.read_text()))
        if before_build is not None:
            before_build(root)
        dist = root / "dist"
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(root)],
            check=True, capture_output=True,
        )
        self.site = root / "site"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(self.site), *map(str, dist.glob("*.whl"))],
            check=True, capture_output=True,
        )
        # As on a deployed machine: bytecode caches written and reused by both tools.
        dropped = ("MYPKG_DATABASE_URL", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
        base = {k: v for k, v in os.environ.items() if k not in dropped}
        self.mypkg_env = {**base, "PYTHONPATH": str(self.site)}
        self.alembic_env = dict(base)
        self.outside = root.parent / f"{root.name}-cwd"
        self.outside.mkdir(exist_ok=True)

    def mypkg(self, db: Path, *args: str) -> Run:
        # From a directory outside the copy, as on a deployed machine: `python -m`
        # would otherwise import the copy's source tree instead of the installed wheel.
        command = [sys.executable, "-m", "mypkg", "--url", f"sqlite:///{db}", *args]
        return run(command, cwd=self.outside, env=self.mypkg_env)

    def alembic(self, db: Path, *args: str) -> Run:
        command = [sys.executable, "-m", "alembic", "-c", str(self.root / "alembic.ini"), *args]
        return run(command, cwd=self.root, env={**self.alembic_env, "MYPKG_DATABASE_URL": f"sqlite:///{db}"})


def synthetic_scripts(n: int, merged: bool = False) -> dict[str, str]:
    """N revisions, linear; with ``merged``, revisions 1 and 2 branch from 0 and 3 merges them
    (a branch made and merged long ago, as most long-lived histories have)."""
    scripts = {}
    parent: str | tuple[str, ...] | None = None
    for i in range(n):
        rev = f"b{i:011d}"
        if merged and i == 2 and n >= 4:
            parent = "b00000000000"
        elif merged and i == 3 and n >= 4:
            parent = ("b00000000001", "b00000000002")
        shown = parent if isinstance(parent, str) or parent is None else ", ".join(parent)
        scripts[f"{i:05d}_{rev}_bench.py"] = REVISION.format(
            i=i, rev=rev, parent=shown or "", parent_repr=repr(parent)
        )
        parent = rev
    return scripts


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_revisions(n: int, repeat: int, work: Path, merged: bool = False) -> dict[str, dict[str, float]]:
    project = Project(work / f"n{n}{'m' if merged else ''}", synthetic_scripts(n, merged))
    head_db = work / f"n{n}-head.db"
    project.mypkg(head_db, "upgrade")
    times: dict[str, dict[str, list[float]]] = {}

    def add(name: str, tool: str, value: float) -> None:
        times.setdefault(name, {"mypkg": [], "alembic": []})[tool].append(value)

    for attempt in range(repeat):
        # Interleaved: each repetition runs every step of both tools, alternating who goes first.
        order = ("mypkg", "alembic") if attempt % 2 == 0 else ("alembic", "mypkg")
        for tool in order:
            fresh = work / f"n{n}-fresh-{tool}.db"
            fresh.unlink(missing_ok=True)
            if tool == "mypkg":
                add("fresh_upgrade", tool, project.mypkg(fresh, "upgrade").seconds)
                add("noop_upgrade", tool, project.mypkg(head_db, "upgrade").seconds)
                add("status", tool, project.mypkg(head_db, "status").seconds)
                add("current", tool, project.mypkg(head_db, "current").seconds)
                add("help", tool, project.mypkg(head_db, "--help").seconds)
            else:
                add("fresh_upgrade", tool, project.alembic(fresh, "upgrade", "head").seconds)
                add("noop_upgrade", tool, project.alembic(head_db, "upgrade", "head").seconds)
                # Alembic has no status: `current` is its closest read-only answer.
                add("status", tool, project.alembic(head_db, "current").seconds)
                add("current", tool, project.alembic(head_db, "current").seconds)
                add("help", tool, project.alembic(head_db, "--help").seconds)
    return {name: {tool: median(v) for tool, v in by_tool.items()} for name, by_tool in times.items()}


def bench_batch_copy(rows: int, repeat: int, work: Path) -> dict[str, float]:
    project = Project(work / "batch", {"0001_big000000001_big.py": BIG_TABLE, "0002_big000000002_widen.py": BATCH_COPY})
    template = work / "batch-template.db"
    project.mypkg(template, "upgrade", "big000000001")
    with sqlite3.connect(template) as db:
        db.executemany(
            "INSERT INTO big (id, name, payload) VALUES (?, ?, ?)",
            ((i, f"name {i}", "x" * 40) for i in range(1, rows + 1)),
        )
    hand = work / "hand_copy.py"
    hand.write_text(HAND_WRITTEN_COPY)
    tools = ("mypkg", "alembic", "hand", "import_floor")
    results: dict[str, list[float]] = {key: [] for tool in tools for key in (tool, f"{tool}_rss")}
    for _ in range(repeat):
        for tool in tools:
            db = work / f"batch-{tool}.db"
            shutil.copy2(template, db)
            if tool == "mypkg":
                measured = project.mypkg(db, "upgrade")
            elif tool == "alembic":
                measured = project.alembic(db, "upgrade", "head")
            elif tool == "hand":
                measured = run([sys.executable, str(hand), str(db)], cwd=work, env=project.alembic_env)
            else:
                # The profile behind the ratio: what any Alembic-based runner pays before
                # its first statement (Python start plus importing SQLAlchemy and Alembic).
                measured = run([sys.executable, "-c", IMPORT_FLOOR], cwd=work, env=project.alembic_env)
            results[tool].append(measured.seconds)
            results[f"{tool}_rss"].append(measured.peak_rss_mb)
            if tool == "import_floor":
                continue  # it copies nothing
            with sqlite3.connect(db) as check:
                assert check.execute("SELECT count(*) FROM big").fetchone() == (rows,)
    return {key: median(values) for key, values in results.items()}


def bench_backfill(rows: int, work: Path, batch: int) -> dict[str, float]:
    from tests.servers.postgresql import PostgresServer

    project = Project(
        work / "backfill",
        {"0001_big000000001_big.py": BIG_TABLE, "0003_big000000003_backfill.py": BACKFILL.format(batch=batch)},
    )
    server = PostgresServer().start()
    try:
        url = server.create_database()
        env = {**project.mypkg_env}
        run([sys.executable, "-m", "mypkg", "--url", url, "upgrade", "big000000001"], cwd=project.outside, env=env)
        import psycopg

        name = url.split("?")[0].rsplit("/", 1)[-1]
        with psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=name, autocommit=True) as db:
            db.execute(
                "INSERT INTO big (id, name, payload) SELECT g, 'name ' || g, repeat('x', 40) "
                "FROM generate_series(1, %s) AS g",
                (rows,),
            )
            db.execute("VACUUM ANALYZE big")
        measured = run([sys.executable, "-m", "mypkg", "--url", url, "upgrade"], cwd=project.outside, env=env)
        with psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=name, autocommit=True) as db:
            filled = db.execute("SELECT count(*) FROM big WHERE name_length = length(name)").fetchone()[0]
            assert filled == rows, filled
            # Reference: the same backfill as one statement, no batching, straight to the server.
            db.execute("UPDATE big SET name_length = NULL")
            started = time.perf_counter()
            db.execute("UPDATE big SET name_length = length(name)")
            single = time.perf_counter() - started
        return {"mypkg": measured.seconds, "mypkg_rss": measured.peak_rss_mb, "single_statement": single}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description=__doc__.split("\n\n")[0],
        epilog="Targets: " + "; ".join(
            f"{name}{'' if n is None else f' N={n}'} <= {limit:g}{'x Alembic' if kind == 'ratio' else ''}"
            for name, n, limit, kind in TARGETS
        ),
    )
    parser.add_argument("--sizes", default="1,200,1000", help="revision counts (default: 1,200,1000)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per measurement (median; default 5)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the batch copy and backfill")
    parser.add_argument("--batch", type=int, default=50_000, help="backfill batch size (default 50000)")
    parser.add_argument("--skip-postgresql", action="store_true", help="no PostgreSQL backfill")
    parser.add_argument("--merged", action="store_true",
                        help="histories with a branch made and merged at the start (the fast path must hold)")
    parser.add_argument("--json", type=Path, default=Path("benchmark-results.json"), help="where to write results")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    started = time.perf_counter()
    results: dict = {
        "history": "merged" if args.merged else "linear",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {},
        "revisions": {},
    }
    from importlib.metadata import version

    results["versions"] = {name: version(name) for name in ("alembic", "sqlalchemy")}
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-") as tmp:
        work = Path(tmp)
        for n in sizes:
            print(f"N={n}: generating, building, timing ...", flush=True)
            results["revisions"][str(n)] = bench_revisions(n, args.repeat, work, args.merged)
        print(f"batch copy of {args.rows} SQLite rows ...", flush=True)
        results["batch_copy"] = bench_batch_copy(args.rows, args.repeat, work)
        if not args.skip_postgresql:
            print(f"batched backfill of {args.rows} PostgreSQL rows ...", flush=True)
            results["backfill"] = bench_backfill(args.rows, work, args.batch)
    results["total_seconds"] = time.perf_counter() - started

    print()
    print(f"{'measurement':<16}{'N':>6}{'mypkg s':>10}{'alembic s':>11}{'ratio':>8}")
    for n, measured in results["revisions"].items():
        for name, by_tool in measured.items():
            ratio = by_tool["mypkg"] / by_tool["alembic"]
            print(f"{name:<16}{n:>6}{by_tool['mypkg']:>10.3f}{by_tool['alembic']:>11.3f}{ratio:>8.2f}")
    copy = results["batch_copy"]
    print(f"\nbatch copy, {args.rows} rows: mypkg {copy['mypkg']:.2f}s (peak RSS {copy['mypkg_rss']:.0f} MB), "
          f"hand-written SQL {copy['hand']:.2f}s (peak RSS {copy['hand_rss']:.0f} MB), "
          f"ratio {copy['mypkg'] / copy['hand']:.2f}")
    print(f"  plain Alembic {copy['alembic']:.2f}s (peak RSS {copy['alembic_rss']:.0f} MB), "
          f"mypkg / Alembic {copy['mypkg'] / copy['alembic']:.2f}; "
          f"start floor (python -c '{IMPORT_FLOOR}') {copy['import_floor']:.2f}s "
          f"= {copy['import_floor'] / copy['hand']:.2f} x the hand-written copy")
    if "backfill" in results:
        fill = results["backfill"]
        print(f"PostgreSQL batched backfill, {args.rows} rows: mypkg {fill['mypkg']:.2f}s "
              f"(peak RSS {fill['mypkg_rss']:.0f} MB); one UPDATE statement on the server {fill['single_statement']:.2f}s")

    print("\ntargets:")
    checks = []
    for name, n, limit, kind in TARGETS:
        if name == "help":
            key = str(max(int(k) for k in results["revisions"]))
            value = results["revisions"][key]["help"]["mypkg"]
            label = "mypkg-migrate --help (s)"
        elif name.startswith("batch_copy"):
            value = copy["mypkg_rss"] if name.endswith("rss_mb") else copy["mypkg"] / copy["hand"]
            label = "batch copy peak RSS (MB)" if name.endswith("rss_mb") else "batch copy vs hand-written SQL"
        else:
            if str(n) not in results["revisions"]:
                continue
            by_tool = results["revisions"][str(n)][name]
            value = by_tool["mypkg"] / by_tool["alembic"]
            label = f"{name} N={n} vs Alembic"
        met = value <= limit
        checks.append({"target": label, "limit": limit, "measured": round(value, 4), "met": met})
        print(f"  {'MET ' if met else 'MISS'} {label:<34} {value:8.3f}  (limit {limit:g})")
    results["targets"] = checks
    print(f"\ntotal {results['total_seconds']:.0f}s; JSON: {args.json}")
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
