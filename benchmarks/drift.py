"""``drift`` on its own and over a fleet of tenant schemas, on the shipped history.

    .venv/bin/python benchmarks/drift.py [--schemas 500] [--jobs 2] [--repeat 5]

Measured: ``mypkg-migrate drift`` at head on a SQLite file (goal: under 1 s), against
``status`` on the same file (the start every command pays); ``fleet drift --schemas`` over
--schemas tenant schemas of one PostgreSQL database (a throwaway server on a unix socket; the
schemas built from the offline SQL in psql sessions; goal: under 30 s for 500), three of them
drifted by hand, which the report must name.
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

from fleet_schemas import build_schemas  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    from tests.servers.postgresql import PostgresServer, client

    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-drift-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'app.db'}"
        subprocess.run([sys.executable, "-m", "mypkg", "--url", url, "upgrade"], env=env, check=True, capture_output=True)

        def timed(*command: str, ok: tuple[int, ...] = (0,)) -> tuple[float, subprocess.CompletedProcess[str]]:
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "mypkg", *command], env=env, capture_output=True, text=True)
            if done.returncode not in ok:
                raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
            return time.perf_counter() - began, done

        drift = statistics.median(timed("--url", url, "drift")[0] for _ in range(args.repeat))
        status = statistics.median(timed("--url", url, "status")[0] for _ in range(args.repeat))
        print(f"drift at head, SQLite, shipped history: {drift:.3f}s (goal < 1 s); status on it: {status:.3f}s")
        server = PostgresServer().start()
        try:
            database = server.create_database()
            names = [f"tenant_{i:05d}" for i in range(args.schemas)]
            offline = timed("--url", database, "--schema", "placeholder_tenant", "upgrade", "--sql", "base:head")[1].stdout
            build_schemas(server, database, names, offline, work)
            drifted = names[7::max(1, args.schemas // 3)][:3]
            statements = ";".join(f"CREATE INDEX ix_by_hand ON {name}.note (body)" for name in drifted)
            assert client(server, "psql", database, "-c", statements).returncode == 0
            seconds, done = timed("--url", database, "fleet", "drift", "--schemas", "tenant_*", "--jobs",
                                  str(args.jobs), "--json", ok=(1,))
            report = json.loads(done.stdout)
            named = sorted(row["target"].rsplit("schema=", 1)[1] for row in report["targets"]
                           if row["outcome"] == "drifted")
            assert named == sorted(drifted), named
            print(f"fleet drift over {args.schemas} schemas, {args.jobs} jobs: {seconds:.1f}s (goal < 30 s for 500); "
                  f"{report['summary']['drifted']} drifted, named: {', '.join(named)}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
