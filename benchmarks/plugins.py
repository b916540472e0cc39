"""A no-op ``upgrade`` with many installed plugins against the same with none.

    .venv/bin/python benchmarks/plugins.py [--plugins 20] [--revisions 50] [--repeat 15]

Builds mypkg's wheel and PLUGINS plugin packages of REVISIONS revisions each (a table per
revision; the first depends on a core revision, as docs/plugins.md shows), as wheels through
the package's build hook; installs mypkg alone into one fresh venv and mypkg with every plugin
into another (the suite's third-party libraries through a .pth line, as
tests/plugins/test_plugins.py does); migrates a SQLite file in each; then times, interleaved,
the no-op ``upgrade`` and ``status`` of each (medians), checks both answered on the fast path
("nothing to do", no SQLAlchemy imported), and prints the ratio (goal: at most 1.2x).

A third peer separates what the plugins cost from what a bigger database costs: mypkg built
with one history of as many revisions as the core and the plugins together, a table each
(benchmarks/run.py's synthetic history), no plugin installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]

import run as bench  # noqa: E402  (benchmarks/run.py)

CORE_ROOT_REVISION = "4a14b7b9f9d6"  # the core's first revision: every plugin depends on it


def write_plugin(where: Path, index: int, revisions: int) -> Path:
    name, package = f"p{index:02d}", f"benchplug_{index:02d}"
    root = where / package
    versions = root / package / "versions"
    versions.mkdir(parents=True)
    (root / package / "__init__.py").write_text('"""A benchmark plugin."""\n')
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["hatchling", "mypkg"]
        build-backend = "hatchling.build"
        [project]
        name = "{package}"
        version = "1.0"
        [project.entry-points."mypkg.migrations"]
        {name} = "{package}"
        [tool.hatch.build.targets.wheel]
        packages = ["{package}"]
        [tool.hatch.build.targets.wheel.hooks.mypkg-migrations]
        """))
    previous = None
    for step in range(revisions):
        revision = f"{index:04x}{step:08x}"
        header = (f"revision = {revision!r}\ndown_revision = {previous!r}\n"
                  f"branch_labels = {(name,) if previous is None else None!r}\n"
                  f"depends_on = {CORE_ROOT_REVISION if previous is None else None!r}\n")
        table = f"{package}_t{step}"
        (versions / f"{revision}_step_{step}.py").write_text(
            f'"""{name} step {step}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n{header}\n\n'
            f"def upgrade():\n    op.create_table({table!r}, sa.Column('id', sa.Integer, primary_key=True))\n\n\n"
            f"def downgrade():\n    op.drop_table({table!r})\n")
        previous = revision
    return root


def make_venv(where: Path, wheels: list[Path]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index",
                    "--no-deps", *map(str, wheels)], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "suite_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=20)
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mypkg-bench-plugins-") as tmp_name:
        tmp = Path(tmp_name)
        dist = tmp / "dist"
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                       check=True, capture_output=True)
        (core,) = dist.glob("mypkg-*.whl")
        sources = [write_plugin(tmp / "src", index, args.revisions) for index in range(args.plugins)]
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps",
                        "--wheel-dir", str(dist), *map(str, sources)], check=True)
        plugin_wheels = sorted(dist.glob("benchplug_*.whl"))
        single = bench.Project(tmp / "single", bench.synthetic_scripts(args.plugins * args.revisions + 6))
        envs = {"none": make_venv(tmp / "none", [core]),
                "single": make_venv(tmp / "single-venv", list((single.root / "dist").glob("mypkg-*.whl"))),
                "plugins": make_venv(tmp / "with", [core, *plugin_wheels])}
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}
        for label, venv in envs.items():
            (tmp / label / "db").mkdir(parents=True, exist_ok=True)
            done = subprocess.run([str(venv / "bin" / "mypkg-migrate"), "upgrade"], cwd=tmp / label / "db", env=env,
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-500:]
            applied = done.stdout.count("\napplied") + done.stdout.startswith("applied")
            print(f"{label}: migrated {applied} revisions", flush=True)
        figures: dict[str, dict[str, float]] = {}
        for command in ("upgrade", "status"):
            samples: dict[str, list[float]] = {label: [] for label in envs}
            for _ in range(args.repeat):
                for label, venv in envs.items():
                    started = time.perf_counter()
                    done = subprocess.run([str(venv / "bin" / "mypkg-migrate"), command], cwd=tmp / label / "db",
                                          env=env, capture_output=True, text=True)
                    samples[label].append(time.perf_counter() - started)
                    assert done.returncode == 0, done.stderr[-300:]
                    assert command != "upgrade" or "nothing to do" in done.stdout, done.stdout
            figures[command] = {label: statistics.median(values) * 1000 for label, values in samples.items()}
        probe = ("import sys; from mypkg.migrate.cli import main; main(['upgrade']); "
                 "print('sqlalchemy' in sys.modules or 'alembic' in sys.modules)")
        heavy = subprocess.run([str(envs["plugins"] / "bin" / "python"), "-c", probe], cwd=tmp / "plugins" / "db",
                               env=env, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"\n{args.plugins} plugins x {args.revisions} revisions, medians of {args.repeat} (ms)")
    print(f"{'command':<9}{'none':>8}{'single':>8}{'plugins':>9}{'/none':>7}{'/single':>8}")
    for command, by in figures.items():
        print(f"{command:<9}{by['none']:>8.0f}{by['single']:>8.0f}{by['plugins']:>9.0f}"
              f"{by['plugins'] / by['none']:>7.2f}{by['plugins'] / by['single']:>8.2f}")
    ratio = figures["upgrade"]["plugins"] / figures["upgrade"]["none"]
    print(f"no-op upgrade with plugins imported SQLAlchemy or Alembic: {heavy}")
    print(f"target: no-op upgrade with plugins <= 1.2x none: {ratio:.2f}x {'met' if ratio <= 1.2 else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"ms": figures, "ratio": ratio, "full_path_imported": heavy == "True"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
