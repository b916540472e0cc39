"""Schema-per-tenant fleets against their peers, in one run, on a real PostgreSQL (started
here, on a unix socket): N tenant schemas of one database.

    .venv/bin/python benchmarks/fleet_schemas.py [--schemas 10000] [--migrate 1000] [--jobs 2] [--json F]

Measured:
- ``fleet status --schemas 'tenant_*'`` over N schemas at head (target: under 5 s), against a
  loop of ``mypkg-migrate --schema S status`` run by ``xargs -P JOBS`` (on a sample, scaled);
- one new revision over ``--migrate`` schemas: ``fleet upgrade`` against the same xargs loop
  of ``mypkg-migrate --schema S upgrade`` (target: at most 0.5x);
- a no-op ``fleet upgrade`` over all N, and the fleet's peak memory (target: under 200 MB
  for 10,000 targets).
The schemas are built from the offline SQL (``upgrade --sql``), one psql session for all.
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

from fleet import timed  # noqa: E402 - the SQLite fleet benchmark's, beside this one


def build_schemas(server: object, url: str, names: list[str], sql: str, work: Path) -> None:
    """Every schema at the state ``sql`` builds, in one psql session (the SQL is the offline
    SQL for a placeholder schema, its name swapped for each tenant's)."""
    from tests.servers.postgresql import client

    script = work / "build.sql"
    for start in range(0, len(names), 1000):  # a session per thousand: the client's own time bound
        with script.open("w") as handle:
            handle.write("SET client_min_messages = warning;\n")
            for name in names[start:start + 1000]:
                handle.write(sql.replace("placeholder_tenant", name))
        done = client(server, "psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script))  # type: ignore[arg-type]
        if done.returncode != 0:
            raise SystemExit(f"building the schemas failed: {done.stderr[-800:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=int, default=10000)
    parser.add_argument("--migrate", type=int, default=1000, help="schemas the one-revision run migrates")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--loop-sample", type=int, default=200,
                        help="schemas the xargs loops run on (their time is scaled)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import mypkg
    from tests.servers.postgresql import PostgresServer

    head, before_head = mypkg.heads()[0], mypkg.history()[-2].revision
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    work = Path(tempfile.mkdtemp(prefix="mypkg-fleet-schemas-bench-"))
    server = PostgresServer().start()
    results: dict[str, float] = {}
    try:
        url = server.create_database()
        cli = [PYTHON, "-m", "mypkg", "--url", url]
        migrated = [f"tenant_m{i:05}" for i in range(args.migrate)]  # one revision behind
        at_head = [f"tenant_h{i:05}" for i in range(args.schemas - args.migrate)]
        started = time.perf_counter()
        offline = subprocess.run([*cli, "--schema", "placeholder_tenant", "upgrade", "--sql", f"base:{before_head}"],
                                 capture_output=True, text=True, env=env, check=True).stdout
        build_schemas(server, url, migrated, offline, work)
        offline = subprocess.run([*cli, "--schema", "placeholder_tenant", "upgrade", "--sql", "base:head"],
                                 capture_output=True, text=True, env=env, check=True).stdout
        build_schemas(server, url, at_head, offline, work)
        print(f"built {args.schemas} schemas in {time.perf_counter() - started:.0f}s", file=sys.stderr)

        fleet = [*cli, "fleet"]
        scale_migrate = len(migrated) / min(args.loop_sample, len(migrated))
        sample = migrated[: min(args.loop_sample, len(migrated))]
        (work / "sample.txt").write_text("\n".join(sample) + "\n")

        def loop(command: str) -> str:
            return (f"xargs -P {args.jobs} -I{{}} {PYTHON} -m mypkg --url '{url}' --schema {{}} {command} "
                    f"< {work / 'sample.txt'}")

        # One new revision over --migrate schemas: the loop on its sample (then stepped back), then the fleet.
        results["one_revision_xargs"] = timed(["sh", "-c", loop("upgrade")], env=env) * scale_migrate
        timed(["sh", "-c", loop(f"downgrade {before_head}")], env=env)
        results["one_revision_fleet"] = timed([*fleet, "upgrade", "--schemas", "tenant_m*", "--jobs", str(args.jobs)],
                                              env=env)
        # Every schema at head now: status and a no-op upgrade over all N.
        results["status_fleet"] = timed([*fleet, "status", "--schemas", "tenant_*"], env=env)
        scale_all = args.schemas / len(sample)
        results["status_xargs"] = timed(["sh", "-c", loop("status")], env=env) * scale_all
        # The offline SQL made no ledger: the first no-op creates them (the full path, per schema).
        results["first_noop_fleet_creates_ledgers"] = timed(
            [*fleet, "upgrade", "--schemas", "tenant_*", "--jobs", str(args.jobs)], env=env)
        results["noop_fleet"] = timed([*fleet, "upgrade", "--schemas", "tenant_*", "--jobs", str(args.jobs)], env=env)
        results["fleet_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    ratios = {
        "status fleet / xargs loop": results["status_fleet"] / results["status_xargs"],
        "one revision fleet / xargs loop (target <= 0.5)": results["one_revision_fleet"] / results["one_revision_xargs"],
    }
    print(f"{args.schemas} schemas of one PostgreSQL database ({args.migrate} one revision behind), "
          f"--jobs {args.jobs} (seconds):")
    for name, value in results.items():
        print(f"  {name:<22} {value:10.2f}")
    print("ratios:")
    for name, value in ratios.items():
        print(f"  {name:<48} {value:6.3f}")
    print(f"  fleet status over {args.schemas} schemas (target < 5 s): {results['status_fleet']:.2f} s")
    print(f"  peak RSS of any process (target < 200 MB): {results['fleet_peak_rss_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"schemas": args.schemas, "migrate": args.migrate, "jobs": args.jobs,
                                         "seconds": results, "ratios": ratios, "head": head}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
