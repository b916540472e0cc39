"""mypkg-migrate, plain Alembic and dbmate on the same history, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/peers.py [--size 1000] [--repeat 7] [--databases sqlite,postgresql]

N synthetic revisions (benchmarks/run.py's: each creates a table), mypkg installed from its
wheel (run.Project), Alembic run from the copy's source root as authors run it, and dbmate
(a compiled Go tool, from the npm package ``dbmate``; found on PATH, as $DBMATE, or
installed into ~/.cache/mypkg-bench by ``npm install dbmate``) given the very SQL Alembic
runs: ``mypkg-migrate upgrade --sql`` cut at each revision into dbmate's files. PostgreSQL is
a throwaway server (tests/servers/postgresql.py) on a unix socket. For each database and tool,
interleaved, --repeat times: a fresh upgrade of an empty database, a no-op upgrade at head,
and status at head (Alembic: ``current``; dbmate: ``status``). Medians and the ratios of
mypkg-migrate to each peer are printed. Then a second wheel of the same history, shipping
checkpoints at its head and at revision --checkpoint-at (default: N - 10), written with
``mypkg-migrate checkpoint`` on SQLite and on the PostgreSQL server before the wheel is built:
a fresh upgrade to head (a new database at a checkpointed head: the driver alone,
mypkg/migrate/fast/install.py) and a fresh upgrade to the revision before head (the
checkpoint at --checkpoint-at, then Alembic for the rest), against dbmate's and mypkg's own
replays of the same run, and the checkpoint's DDL sent alone.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import run as bench  # noqa: E402  (benchmarks/run.py)

CACHE = Path.home() / ".cache" / "mypkg-bench"


def find_dbmate() -> str:
    """The dbmate binary itself (not npm's node wrapper, which would add Node's start-up)."""
    if os.environ.get("DBMATE"):
        return os.environ["DBMATE"]
    found = sorted((CACHE / "node_modules" / "@dbmate").glob("*/bin/dbmate*"))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "dbmate"],
                       check=True, capture_output=True)
        found = sorted((CACHE / "node_modules" / "@dbmate").glob("*/bin/dbmate*"))
    if not found:
        raise SystemExit("dbmate not found: set DBMATE, or install npm")
    return str(found[0])


def dbmate_files(project: bench.Project, dialect_url: str, target: Path) -> int:
    """Alembic's offline SQL for the whole history, one dbmate file per revision."""
    result = subprocess.run([sys.executable, "-m", "mypkg", "--url", dialect_url, "upgrade", "--sql", "base:head"],
                            env=project.mypkg_env, cwd=project.outside, capture_output=True, text=True, check=True)
    chunks = re.split(r"^-- Running upgrade .*$", result.stdout, flags=re.M)[1:]
    target.mkdir(parents=True, exist_ok=True)
    for index, chunk in enumerate(chunks):
        # dbmate keeps its own version table and transactions: Alembic's are left out.
        statements = [line for line in chunk.strip().splitlines()
                      if "alembic_version" not in line and line.strip() not in ("BEGIN;", "COMMIT;")]
        body = "\n".join(statements).strip()
        (target / f"{20000101000000 + index}_r{index}.sql").write_text(
            f"-- migrate:up\n{body}\n\n-- migrate:down\n"
        )
    return len(chunks)


def write_checkpoint(root: Path, revision: str, replay_on: list[str]) -> None:
    """``mypkg-migrate checkpoint REV`` in the copy's source tree, before its wheel is built."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    replays = [arg for url in replay_on for arg in ("--replay-on", url)]
    subprocess.run([sys.executable, "-m", "mypkg", "checkpoint", revision, *replays], cwd=root,
                   env={**env, "PYTHONPATH": str(root)}, check=True, capture_output=True)


def ddl_seconds(root: Path, kind: str, url: str, revision: str) -> float:
    """The server's (or SQLite's) own time for the checkpoint's statements, in one
    transaction on an empty database: the floor under any install of that schema."""
    import json
    import time

    import sqlalchemy as sa

    path = root / "alembic" / "checkpoints" / f"{revision}.json"
    statements = json.loads(path.read_text())["forms"][kind]["statements"]
    if kind == "sqlite":  # the driver alone, one explicit transaction
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        started = time.perf_counter()
        connection.execute("BEGIN")
        for statement in statements:
            connection.execute(statement)
        connection.execute("COMMIT")
        connection.close()
        return time.perf_counter() - started
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            started = time.perf_counter()
            connection.exec_driver_sql(";\n".join(statements))  # one round trip, as the install sends it
            connection.commit()
            return time.perf_counter() - started
    finally:
        engine.dispose()


class Databases:
    """A fresh empty database per fresh run, and one at head per tool, per dialect."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind, self.work, self.server = kind, work, None
        if kind == "postgresql":
            from tests.servers.postgresql import PostgresServer

            self.server = PostgresServer().start()

    def new(self) -> dict[str, str]:
        """URLs of one new empty database as each tool spells them."""
        if self.kind == "sqlite":
            path = Path(tempfile.mkstemp(suffix=".db", dir=self.work)[1])
            path.unlink()
            return {"sa": f"sqlite:///{path}", "dbmate": f"sqlite:{path}"}
        url = self.server.create_database()  # type: ignore[union-attr]
        name = url.split("@/", 1)[1].split("?", 1)[0]
        socket = quote(str(self.server.socket_dir), safe="")  # type: ignore[union-attr]
        return {"sa": url, "dbmate": f"postgres://{self.server.user}@/{name}?socket={socket}&sslmode=disable"}  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--checkpoint-at", type=int, default=None, help="revision index (default: size - 10)")
    args = parser.parse_args(argv)
    checkpoint_at = args.size - 10 if args.checkpoint_at is None else args.checkpoint_at
    dbmate = find_dbmate()
    version = subprocess.run([dbmate, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"N={args.size} revisions, medians of {args.repeat}, interleaved; {version}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-peers-") as tmp:
        work = Path(tmp)
        scripts = bench.synthetic_scripts(args.size)
        project = bench.Project(work / "project", scripts)
        kinds = args.databases.split(",")
        all_databases = {kind: Databases(kind, work) for kind in kinds}
        try:
            def both_checkpoints(root: Path) -> None:
                for index in (checkpoint_at, args.size - 1):
                    write_checkpoint(root, f"b{index:011d}", [all_databases[k].new()["sa"] for k in kinds
                                                              if k != "sqlite"])

            checkpointed = bench.Project(work / "checkpointed", scripts, before_build=both_checkpoints)
        except BaseException:
            for databases in all_databases.values():
                databases.stop()
            raise
        print(f"{'database':<12}{'measurement':<14}{'mypkg s':>9}{'alembic s':>11}{'dbmate s':>10}"
              f"{'/alembic':>10}{'/dbmate':>9}", flush=True)
        for kind in kinds:
            databases = all_databases[kind]
            try:
                sql_dir = work / f"dbmate-{kind}"
                count = dbmate_files(project, databases.new()["sa"], sql_dir)
                assert count == args.size, count
                commands = {
                    "mypkg": lambda url, *a: [sys.executable, "-m", "mypkg", "--url", url["sa"], *a],
                    "alembic": lambda url, *a: [sys.executable, "-m", "alembic", "-c",
                                                str(project.root / "alembic.ini"), *a],
                    "dbmate": lambda url, *a: [dbmate, "--no-dump-schema", "--migrations-dir", str(sql_dir),
                                               "--url", url["dbmate"], *a],
                }
                steps = {
                    "mypkg": {"fresh": ["upgrade"], "no-op": ["upgrade"], "status": ["status"]},
                    "alembic": {"fresh": ["upgrade", "head"], "no-op": ["upgrade", "head"], "status": ["current"]},
                    "dbmate": {"fresh": ["migrate"], "no-op": ["migrate"], "status": ["status"]},
                }

                def timed(tool: str, url: dict[str, str], step: str) -> float:
                    env = project.mypkg_env if tool == "mypkg" else {**project.alembic_env, "MYPKG_DATABASE_URL": url["sa"]}
                    cwd = project.outside if tool == "mypkg" else project.root
                    return bench.run(commands[tool](url, *steps[tool][step]), cwd=cwd, env=env).seconds

                at_head = {}
                for tool in commands:
                    at_head[tool] = databases.new()
                    timed(tool, at_head[tool], "fresh")
                samples: dict[str, dict[str, list[float]]] = {}
                for attempt in range(args.repeat):
                    tools = list(commands) if attempt % 2 == 0 else list(reversed(commands))
                    for tool in tools:
                        for step in ("fresh", "no-op", "status"):
                            url = databases.new() if step == "fresh" else at_head[tool]
                            samples.setdefault(step, {}).setdefault(tool, []).append(timed(tool, url, step))
                    # Through the checkpoints, in the same rounds: a fresh empty database each time.
                    for step, to in (("checkpoint", []), ("checkpoint+9", [f"b{args.size - 2:011d}"])):
                        url = databases.new()
                        done = bench.run([sys.executable, "-m", "mypkg", "--url", url["sa"], "upgrade", *to],
                                         cwd=checkpointed.outside, env=checkpointed.mypkg_env)
                        samples.setdefault(step, {}).setdefault("mypkg", []).append(done.seconds)
                for step, by_tool in samples.items():
                    if step.startswith("checkpoint"):
                        continue
                    mine, alembic, peer = (statistics.median(by_tool[t]) for t in ("mypkg", "alembic", "dbmate"))
                    print(f"{kind:<12}{step:<14}{mine:>9.3f}{alembic:>11.3f}{peer:>10.3f}"
                          f"{mine / alembic:>10.2f}{mine / peer:>9.2f}", flush=True)
                replay, peer = (statistics.median(samples["fresh"][t]) for t in ("mypkg", "dbmate"))
                for step, index, label in (("checkpoint", args.size - 1, "fresh via checkpoint at head"),
                                           ("checkpoint+9", checkpoint_at,
                                            f"to head-1 via checkpoint at {checkpoint_at}")):
                    through = statistics.median(samples[step]["mypkg"])
                    floor = ddl_seconds(checkpointed.root, kind, databases.new()["sa"], f"b{index:011d}")
                    print(f"{kind:<12}{label:<34}{through:>9.3f}s"
                          f"  /mypkg replay {through / replay:.3f}  /dbmate replay {through / peer:.3f}"
                          f"  (its DDL alone, one transaction, no Python start: {floor:.3f}s)", flush=True)
            finally:
                databases.stop()
                del all_databases[kind]
        for left in all_databases.values():
            left.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
