"""``roundtrip`` of the shipped history with 1,000 rows per table on SQLite (goal: under 10 s).

    .venv/bin/python benchmarks/roundtrip.py [--rows 1000] [--repeat 3]

Peers in the same run: the same round-trip with one row per table (what the data costs),
and the schema-only stairway (each revision upgraded, downgraded and upgraded again by
``mypkg-migrate``, no rows): what a round-trip adds to the walk a stairway test makes.
Medians of ``--repeat`` runs, each a fresh temporary SQLite file.
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
COMMAND = [sys.executable, "-m", "mypkg"]


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-800:] + done.stderr[-800:]
    return seconds


def stairway(cwd: Path, env: dict[str, str]) -> float:
    """Each revision: upgrade to it, back one, up again (one process each, as a test would)."""
    revisions = json.loads(subprocess.run([*COMMAND, "history", "--json"], cwd=cwd, env=env, capture_output=True,
                                          text=True, check=True).stdout)["revisions"]
    url = f"sqlite:///{cwd / 'stairway.db'}"
    started = time.perf_counter()
    for revision in revisions:
        for args in (["upgrade", revision["revision"]], ["downgrade", "-1"] if revision["down_revisions"]
                     else ["downgrade", "base", "--yes"], ["upgrade", revision["revision"]]):
            timed([*COMMAND, "--url", url, *args, "-q"], cwd, env)
    (cwd / "stairway.db").unlink()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(ROOT)}
    samples: dict[str, list[float]] = {f"roundtrip, {args.rows} rows": [], "roundtrip, 1 row": [],
                                       "stairway, no rows": []}
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-roundtrip-") as tmp_name:
        tmp = Path(tmp_name)
        for _ in range(args.repeat):
            samples[f"roundtrip, {args.rows} rows"].append(
                timed([*COMMAND, "roundtrip", "--rows", str(args.rows)], tmp, env))
            samples["roundtrip, 1 row"].append(timed([*COMMAND, "roundtrip", "--rows", "1"], tmp, env))
            samples["stairway, no rows"].append(stairway(tmp, env))
    figures = {label: statistics.median(values) for label, values in samples.items()}
    base = figures["stairway, no rows"]
    print(f"shipped history on SQLite, medians of {args.repeat}, cpus {os.cpu_count()}")
    for label, seconds in figures.items():
        print(f"  {label:<24}{seconds:>7.2f} s  {seconds / base:>5.2f}x the stairway")
    measured = figures[f"roundtrip, {args.rows} rows"]
    print(f"target: roundtrip with {args.rows} rows per table < 10 s: {measured:.2f} s "
          f"{'met' if measured < 10 else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
