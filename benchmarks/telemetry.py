"""What the ``otel`` extra costs a no-op ``upgrade`` when no ``OTEL_*`` variable is set.

    .venv/bin/python benchmarks/telemetry.py [--repeat 21]

Builds mypkg's wheel and installs it into two fresh venvs that differ only in whether
OpenTelemetry can be imported: both reach the suite's third-party libraries through a .pth
line (as benchmarks/plugins.py does), one onto the suite's site-packages as they are (the
``otel`` extra installed), the other onto a copy of it without ``opentelemetry``. Migrates a
SQLite file in each, then times, interleaved, the no-op ``upgrade`` (medians): without the
extra; with it and no ``OTEL_*`` variable (goal: at most 1.05x the first); and, for scale,
with it turned on (``OTEL_SERVICE_NAME`` set, exporters ``none``: the SDK's set-up alone).
Checks each answered on the fast path and that the second imported nothing of OpenTelemetry.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]

from plugins import make_venv  # noqa: E402  (benchmarks/plugins.py)


def without_opentelemetry(where: Path) -> Path:
    """The suite's site-packages, every entry linked but OpenTelemetry's."""
    where.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.startswith("opentelemetry"):
            (where / entry.name).symlink_to(entry)
    return where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-telemetry-") as tmp_name:
        tmp = Path(tmp_name)
        dist = tmp / "dist"
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                       check=True, capture_output=True)
        (wheel,) = dist.glob("mypkg-*.whl")
        bare = make_venv(tmp / "bare", [wheel])
        pth = next((bare / "lib").glob("python*/site-packages/suite_libraries.pth"))
        pth.write_text(f"{without_opentelemetry(tmp / 'site-without-otel')}\n")
        extra = make_venv(tmp / "extra", [wheel])
        base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}
        peers = {
            "without the extra": (bare, base),
            "extra, no OTEL_*": (extra, base),
            "extra, OTEL on": (extra, {**base, "OTEL_SERVICE_NAME": "bench", "OTEL_TRACES_EXPORTER": "none",
                                       "OTEL_METRICS_EXPORTER": "none"}),
        }
        work = tmp / "db"
        work.mkdir()
        for venv in (bare, extra):
            done = subprocess.run([str(venv / "bin" / "mypkg-migrate"), "upgrade", "-q"], cwd=work, env=base,
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-500:]
        found = subprocess.run([str(bare / "bin" / "python"), "-c", "import opentelemetry"], env=base,
                               capture_output=True)
        assert found.returncode != 0, "OpenTelemetry is importable in the venv without the extra"
        probe = ("import sys; from mypkg.migrate.cli import main; main(['upgrade']); "
                 "print(sorted({m.split('.')[0] for m in sys.modules} & {'opentelemetry', 'sqlalchemy', 'alembic'}))")
        imported = subprocess.run([str(extra / "bin" / "python"), "-c", probe], cwd=work, env=base,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1]
        samples: dict[str, list[float]] = {label: [] for label in peers}
        for _ in range(args.repeat):
            for label, (venv, env) in peers.items():
                started = time.perf_counter()
                done = subprocess.run([str(venv / "bin" / "mypkg-migrate"), "upgrade"], cwd=work, env=env,
                                      capture_output=True, text=True)
                samples[label].append(time.perf_counter() - started)
                assert done.returncode == 0 and "nothing to do" in done.stdout, (label, done.stdout, done.stderr)
    ms = {label: statistics.median(values) * 1000 for label, values in samples.items()}
    first = ms["without the extra"]
    print(f"no-op upgrade (fast path), medians of {args.repeat}, cpus {os.cpu_count()}")
    for label, value in ms.items():
        print(f"  {label:<20}{value:>7.1f} ms  {value / first:>5.2f}x")
    ratio = ms["extra, no OTEL_*"] / first
    print(f"imported with the extra and no OTEL_*: {imported}")
    print(f"target: extra installed, no OTEL_* <= 1.05x without: {ratio:.3f}x {'met' if ratio <= 1.05 else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"ms": ms, "ratio": ratio, "imported": imported}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
