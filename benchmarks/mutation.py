"""Mutation testing of the machinery: which promises do the tests really pin?

    .venv/bin/python -m pip install cosmic-ray
    .venv/bin/python benchmarks/mutation.py order manifest    # modules named in pyproject.toml
    .venv/bin/python benchmarks/mutation.py                   # every module configured

The modules and the tests that exercise each are configured in ``pyproject.toml``,
``[tool.mypkg.mutation]`` (``timeout``: seconds before a mutant's test run counts as killed,
default 30, as a mutant that loops forever must be). cosmic-ray mutates files in place, so this runs in a copy of the
committed tree (``git archive HEAD``), with that copy first on ``PYTHONPATH``: the CLI tests'
``mypkg-migrate`` subprocesses import the mutated files too. It prints, per module, the
mutants killed, the survivors and the score, and each survivor's diff. Not part of CI: a
module takes minutes.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configured() -> dict[str, dict[str, str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypkg"]["mutation"]["modules"]


def run_module(name: str, spec: dict[str, str], copy: Path) -> tuple[int, int, list[str]]:
    config = copy / f"{name}.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{spec["module"]}"\n'
        f"timeout = {spec.get('timeout', 30)}.0\nexcluded-modules = []\n"
        f'test-command = "{sys.executable} -m pytest -x -q -p no:cacheprovider {spec["tests"]}"\n'
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    session = copy / f"{name}.sqlite"
    env = {**os.environ, "PYTHONPATH": str(copy)}
    bindir = Path(sys.executable).parent
    for step in (["init", str(config), str(session)], ["exec", str(config), str(session)]):
        subprocess.run([str(bindir / "cosmic-ray"), *step], cwd=copy, env=env, check=True, capture_output=True)
    with sqlite3.connect(session) as db:
        outcomes = db.execute("SELECT test_outcome, diff FROM work_results").fetchall()
    survivors = [diff for outcome, diff in outcomes if "SURVIVED" in str(outcome)]
    return len(outcomes), len(outcomes) - len(survivors), survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="names under [tool.mypkg.mutation.modules] (default: all)")
    args = parser.parse_args(argv)
    modules = configured()
    chosen = args.modules or list(modules)
    with tempfile.TemporaryDirectory(prefix="mypkg-mutation-") as tmp:
        copy = Path(tmp)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
        print(f"{'module':<28}{'mutants':>8}{'killed':>8}{'score':>8}")
        for name in chosen:
            total, killed, survivors = run_module(name, modules[name], copy)
            print(f"{modules[name]['module']:<28}{total:>8}{killed:>8}{killed / max(total, 1):>8.0%}", flush=True)
            for diff in survivors:
                changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
                print("    survived: " + " | ".join(changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
