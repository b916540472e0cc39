"""A background backfill against one UPDATE, on a real PostgreSQL, with an application writing beside.

    .venv/bin/python benchmarks/background.py [--rows 1000000] [--batch-seconds 0.2] [--seconds 5]

One table of --rows rows (built on the server). An application thread updates one random
row at a time, as a site's users do, and its latency is recorded: first idle (--seconds),
then while one ``UPDATE`` fills a new column over every row, then while ``backfill run``
(a worker, ``--batch-seconds``) does the same from a queued background backfill. Printed:
the rows per second of each, and the application's median and p99 latency during each
against idle (goal: p99 within 2x of idle during the background backfill; the single UPDATE
holds every row's lock until it commits).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Application:
    """Updates one random row at a time until stopped; the latency of each, in seconds."""

    def __init__(self, url: str, rows: int) -> None:
        self.url, self.rows, self.latencies, self.errors = url, rows, [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        import psycopg

        chance = random.Random(7)
        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self.stop.is_set():
                began = time.perf_counter()
                try:
                    connection.execute("UPDATE note SET visits = visits + 1 WHERE id = %s",
                                       (chance.randint(1, self.rows),))
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.latencies.append(time.perf_counter() - began)
                time.sleep(0.002)

    def __enter__(self) -> Application:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-seconds", type=float, default=0.2)
    parser.add_argument("--pause", type=float, default=0.0, help="the worker's --pause")
    parser.add_argument("--seconds", type=float, default=5.0, help="idle measurement")
    args = parser.parse_args(argv)
    import psycopg

    from tests.history import histories
    from tests.servers.postgresql import PostgresServer

    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="mypkg-bench-background-") as tmp:
            url = server.create_database()
            plain = url.replace("postgresql+psycopg", "postgresql")
            table = (f'op.create_table("note", sa.Column("id", sa.Integer, primary_key=True), '
                     f'sa.Column("body", sa.String(50)), sa.Column("visits", sa.Integer, server_default="0"))\n'
                     f'op.execute("INSERT INTO note (id, body) SELECT i, \'Body \' || i FROM generate_series(1, {args.rows}) i")')
            queued = ('op.add_column("note", sa.Column("slug", sa.String(50)))\nfrom mypkg.batch import backfill\n'
                      'backfill("note", values={"slug": sa.func.lower(sa.column("body"))}, where="slug IS NULL", '
                      'batch_size=10000, background=True)')
            root = histories.project_with(Path(tmp) / "project", [
                histories.script("a.py", "bk000000000a", None, "notes", table),
                histories.script("b.py", "bk000000000b", "bk000000000a", "slugs", queued),
            ])
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(root)}

            def mig(*command: str) -> float:
                began = time.perf_counter()
                subprocess.run([sys.executable, "-m", "mypkg", "--url", url, *command], cwd=root, env=env,
                               check=True, capture_output=True)
                return time.perf_counter() - began

            mig("upgrade", "bk000000000a")
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute("VACUUM ANALYZE note")
            with Application(plain, args.rows) as idle:
                time.sleep(args.seconds)
            # One UPDATE over every row, in one transaction (then rolled back by dropping the column).
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute("ALTER TABLE note ADD COLUMN slug varchar(50)")
                with Application(plain, args.rows) as during_update:
                    began = time.perf_counter()
                    connection.execute("UPDATE note SET slug = lower(body) WHERE slug IS NULL")
                    single = time.perf_counter() - began
                connection.execute("ALTER TABLE note DROP COLUMN slug")
                connection.execute("VACUUM ANALYZE note")
            mig("upgrade")  # queues the background backfill at once
            with Application(plain, args.rows) as during_worker:
                worker = mig("backfill", "run", "--once", "--batch-seconds", str(args.batch_seconds),
                             "--pause", str(args.pause))
            with psycopg.connect(plain) as connection:
                assert connection.execute("SELECT count(*) FROM note WHERE slug IS NULL").fetchone()[0] == 0
            print(f"{args.rows:,} rows on PostgreSQL; the application updates one random row every 2 ms")
            print(f"{'':<46}{'rows/s':>10}{'app median ms':>15}{'app p99 ms':>12}{'p99 / idle':>12}{'max ms':>10}")
            base = p99(idle.latencies)
            for label, rate, app in (("idle", None, idle), ("one UPDATE", args.rows / single, during_update),
                                     (f"backfill run --batch-seconds {args.batch_seconds:g} --pause {args.pause:g}",
                                      args.rows / worker, during_worker)):
                shown = f"{rate:>10,.0f}" if rate else f"{'':>10}"
                print(f"{label:<46}{shown}{statistics.median(app.latencies) * 1000:>15.2f}"
                      f"{p99(app.latencies) * 1000:>12.2f}{p99(app.latencies) / base:>12.2f}"
                      f"{max(app.latencies) * 1000:>10.0f}")
            print(f"application errors: {len(idle.errors) + len(during_update.errors) + len(during_worker.errors)}; "
                  f"the worker's {worker:.1f}s include its start (about 0.4 s)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
