"""The fast path on PostgreSQL, linear and merged histories, against the full path.

    .venv/bin/python benchmarks/fastpath_postgresql.py [--size 1000] [--repeat 7]

For each shape (linear; a branch made and merged at the start), a copy of the project with
SIZE synthetic revisions is built and installed as a wheel (benchmarks/run.py's Project), a
throwaway PostgreSQL server is started (tests/servers/postgresql.py), the database is migrated to
head, then a no-op ``upgrade`` and ``status`` are timed on the fast path and with
``MYPKG_NO_FASTPATH=1`` (the full path), interleaved, medians printed with their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import run as bench  # noqa: E402  (benchmarks/run.py)

from tests.servers.postgresql import PostgresServer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="mypkg-bench-pg-") as tmp:
            print(f"{'history':<8}{'command':<9}{'fast ms':>9}{'full ms':>9}{'ratio':>7}")
            for merged in (False, True):
                url = server.create_database()
                project = bench.Project(Path(tmp) / f"p{int(merged)}", bench.synthetic_scripts(args.size, merged))
                base = [sys.executable, "-m", "mypkg", "--url", url]
                done = subprocess.run([*base, "upgrade"], env=project.mypkg_env, cwd=project.outside,
                                      capture_output=True, text=True)
                assert done.returncode == 0, done.stderr[-500:]
                for command in (["upgrade"], ["status"]):
                    samples: dict[str, list[float]] = {"fast": [], "full": []}
                    for _ in range(args.repeat):
                        for label, extra in (("fast", {}), ("full", {"MYPKG_NO_FASTPATH": "1"})):
                            started = time.perf_counter()
                            result = subprocess.run([*base, *command], env={**project.mypkg_env, **extra},
                                                    cwd=project.outside, capture_output=True, text=True)
                            samples[label].append(time.perf_counter() - started)
                            assert result.returncode == 0, result.stderr[-300:]
                    fast, full = (statistics.median(samples[k]) * 1000 for k in ("fast", "full"))
                    shape = "merged" if merged else "linear"
                    print(f"{shape:<8}{command[0]:<9}{fast:>9.0f}{full:>9.0f}{fast / full:>7.2f}", flush=True)
                server.drop_database(url)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
