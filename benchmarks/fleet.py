"""Fleets against their peers, in one run: the fleet command, a loop of mypkg-migrate run by
`xargs -P JOBS`, and a loop of plain `alembic upgrade head` (authors' set-up, one target per
run), over N SQLite files (one per tenant).

    .venv/bin/python benchmarks/fleet.py [--files 2000] [--jobs 2] [--alembic-sample 50] [--json F]

Measured: a no-op upgrade of every file at head; one new revision on every file (the files
one revision behind); `fleet status`; the fleet's peak memory (parent and the largest worker).
The alembic and xargs loops run on a sample of files (a Python start each: about 1 s and
0.1-0.7 s a file) and are scaled to N. Targets
(issue 26): no-op fleet <= 0.3x the xargs loop and <= 0.05x the alembic loop; one revision
<= 0.5x the xargs loop; peak memory < 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))


def timed(command: list[str], **kwargs: object) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed ({' '.join(command[:6])} ...): {done.stderr[-800:]}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--alembic-sample", type=int, default=50)
    parser.add_argument("--loop-sample", type=int, default=400,
                        help="files the xargs loop runs on (its time is scaled to --files)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import mypkg

    head, before_head = mypkg.heads()[0], mypkg.history()[-2].revision
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    work = Path(tempfile.mkdtemp(prefix="mypkg-fleet-bench-"))
    try:
        data = work / "data"
        data.mkdir()
        template = work / "template.db"
        mypkg.upgrade(f"sqlite:///{template}", before_head)
        paths = [data / f"tenant_{i:05}.db" for i in range(args.files)]
        for path in paths:
            shutil.copyfile(template, path)
        fleet = [PYTHON, "-m", "mypkg", "fleet"]
        glob = ["--sqlite-glob", str(data / "*.db"), "--jobs", str(args.jobs)]
        looped = paths[: max(1, min(args.loop_sample, len(paths)))]
        (work / "loop.txt").write_text("\n".join(map(str, looped)) + "\n")
        loop = (f"xargs -P {args.jobs} -I{{}} {PYTHON} -m mypkg --url sqlite:///{{}} upgrade < {work / 'loop.txt'}")
        scale = len(paths) / len(looped)

        results: dict[str, float] = {}
        # One new revision on every file: the fleet, then (after stepping back) the xargs loop.
        results["one_revision_fleet"] = timed([*fleet, "upgrade", *glob], env=env)
        timed([*fleet, "downgrade", before_head, *glob], env=env)
        results["one_revision_xargs"] = timed(["sh", "-c", loop], env=env) * scale
        # No-op at head: every file there first (the loop above took only its sample).
        timed([*fleet, "upgrade", *glob], env=env)
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        results["noop_fleet"] = timed([*fleet, "upgrade", *glob], env=env)
        results["fleet_peak_rss_mb"] = max(before_children, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        results["noop_xargs"] = timed(["sh", "-c", loop], env=env) * scale
        results["status_fleet"] = timed([*fleet, "status", *glob], env=env)
        sample = paths[: max(1, min(args.alembic_sample, len(paths)))]
        alembic = shutil.which("alembic", path=str(Path(PYTHON).parent)) or "alembic"
        started = time.perf_counter()
        for path in sample:
            timed([alembic, "upgrade", "head"], cwd=ROOT, env={**env, "MYPKG_DATABASE_URL": f"sqlite:///{path}"})
        results["noop_alembic_loop"] = (time.perf_counter() - started) * len(paths) / len(sample)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratios = {
        "noop fleet / xargs loop (target <= 0.3)": results["noop_fleet"] / results["noop_xargs"],
        "noop fleet / alembic loop (target <= 0.05)": results["noop_fleet"] / results["noop_alembic_loop"],
        "one revision fleet / xargs loop (target <= 0.5)": results["one_revision_fleet"] / results["one_revision_xargs"],
    }
    print(f"{args.files} SQLite files, --jobs {args.jobs} (seconds):")
    for name, value in results.items():
        print(f"  {name:<22} {value:10.2f}")
    print("ratios:")
    for name, value in ratios.items():
        print(f"  {name:<48} {value:6.3f}")
    print(f"  fleet peak RSS (target < 200 MB): {results['fleet_peak_rss_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"files": args.files, "jobs": args.jobs, "seconds": results,
                                         "ratios": ratios, "head": head}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
