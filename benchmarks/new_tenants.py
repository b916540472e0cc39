"""New tenant schemas through a checkpoint at head, on a real PostgreSQL: what a sign-up waits for.

    .venv/bin/python benchmarks/new_tenants.py [--size 1000] [--tenants 1000] [--in-process 30]
                                               [--replay-sample 4] [--jobs 2]

A history of --size synthetic revisions (benchmarks/run.py's: each creates a table),
installed from two wheels of it: one shipping a checkpoint at its head (``mypkg-migrate
checkpoint --replay-on``), one without. PostgreSQL is a throwaway server on a unix socket.
Measured in one run, each against its peers:

- in one long-lived process (a web application's sign-up), ``mypkg.upgrade(url,
  schema=...)`` for --in-process new tenants: the median of the second and later against the
  checkpoint's own SQL sent alone in one transaction on an open connection (its floor;
  goal: at most 2x), and against the same calls through the full path (``MYPKG_NO_FASTPATH``);
- ``fleet upgrade --targets FILE`` over --tenants new schemas through the checkpoint, against
  the replay (the wheel without it) of --replay-sample of them, scaled (goal: at most 0.1x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import peers  # noqa: E402  (benchmarks/peers.py: write_checkpoint)
import run as bench  # noqa: E402  (benchmarks/run.py)

IN_PROCESS = r"""
import json, os, sys, time
import mypkg
url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seconds = []
for i in range(count):
    began = time.perf_counter()
    result = mypkg.upgrade(url, schema=f"{prefix}{i}")
    seconds.append(time.perf_counter() - began)
    assert result.applied, result
print(json.dumps({"seconds": seconds, "sqlalchemy": "sqlalchemy" in sys.modules}))
"""


def floor_seconds(server: object, url: str, checkpoint: Path, count: int) -> list[float]:
    """The checkpoint's statements, rows and sequences into a new schema, one transaction on
    an open connection, nothing else: what any install of that schema must at least cost."""
    import psycopg

    from mypkg.migrate.database.snapshot import render

    form = json.loads(checkpoint.read_text())["forms"]["postgresql"]
    body = render(form, "postgresql")
    seconds = []
    with psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=url.split("@/")[1].split("?")[0],  # type: ignore[attr-defined]
                         autocommit=True) as connection:
        for i in range(count):
            began = time.perf_counter()
            connection.execute(f"BEGIN; CREATE SCHEMA floor_{i}; SET LOCAL search_path TO floor_{i};\n{body} COMMIT;"
                               .encode())
            seconds.append(time.perf_counter() - began)
    return seconds


def drop(server: object, url: str, prefix: str) -> None:
    """Every schema named ``prefix...``, with its tables."""
    import psycopg

    with psycopg.connect(host=str(server.socket_dir), user=server.user, dbname=url.split("@/")[1].split("?")[0],  # type: ignore[attr-defined]
                         autocommit=True) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (prefix,))]
        for name in names:
            connection.execute(f'DROP SCHEMA "{name}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--in-process", type=int, default=30)
    parser.add_argument("--replay-sample", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    from tests.servers.postgresql import PostgresServer

    head = f"b{args.size - 1:011d}"
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="mypkg-bench-tenants-") as tmp:
            work = Path(tmp)
            scripts = bench.synthetic_scripts(args.size)
            checkpointed = bench.Project(work / "checkpointed", scripts, before_build=lambda root: peers.write_checkpoint(
                root, head, [server.create_database()]))
            plain = bench.Project(work / "plain", scripts)
            url = server.create_database()
            print(f"N={args.size} revisions, a checkpoint at head; PostgreSQL {url.split('?')[0]}", flush=True)

            def in_process(project: bench.Project, prefix: str, **env: str) -> dict:
                done = subprocess.run([sys.executable, "-c", IN_PROCESS, url, prefix, str(args.in_process)],
                                      cwd=project.outside, env={**project.mypkg_env, **env}, capture_output=True,
                                      text=True, check=True)
                return json.loads(done.stdout)

            # Each phase starts from the same catalog: a thousand tables per tenant make every
            # later CREATE a little slower, so what one phase made is dropped before the next.
            fast = in_process(checkpointed, "fast_")
            drop(server, url, "fast_")
            floor = floor_seconds(server, url, checkpointed.root / "alembic" / "checkpoints" / f"{head}.json",
                                  args.in_process)
            drop(server, url, "floor_")
            full = in_process(checkpointed, "full_", MYPKG_NO_FASTPATH="1")
            drop(server, url, "full_")
            later, later_full, floor_median = (statistics.median(s[1:]) for s in (fast["seconds"], full["seconds"], floor))
            print(f"in-process new tenant (2nd and later, median of {args.in_process - 1}): {later * 1000:.1f} ms; "
                  f"full path {later_full * 1000:.1f} ms; its SQL alone in one transaction {floor_median * 1000:.1f} ms",
                  flush=True)
            print(f"  /floor {later / floor_median:.2f} (goal <= 2)   /full path {later / later_full:.3f}   "
                  f"first tenant {fast['seconds'][0] * 1000:.0f} ms   SQLAlchemy imported: {fast['sqlalchemy']}",
                  flush=True)

            def fleet(project: bench.Project, prefix: str, count: int) -> float:
                targets = work / f"{prefix}targets.txt"
                targets.write_text("".join(f"{url}&schema={prefix}{i}\n" for i in range(count)))
                began = time.perf_counter()
                bench.run([sys.executable, "-m", "mypkg", "fleet", "upgrade", "--targets", str(targets),
                           "--jobs", str(args.jobs)], cwd=project.outside, env=project.mypkg_env)
                return time.perf_counter() - began

            through = fleet(checkpointed, "fleet_", args.tenants)
            sample = fleet(plain, "replay_", args.replay_sample)
            replay = sample * args.tenants / args.replay_sample
            print(f"fleet upgrade of {args.tenants} new schemas through the checkpoint: {through:.1f} s "
                  f"({through / args.tenants * 1000:.1f} ms each); replay of {args.replay_sample} "
                  f"({sample:.1f} s) scaled: {replay:.0f} s;  /replay {through / replay:.3f} (goal <= 0.1)",
                  flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
