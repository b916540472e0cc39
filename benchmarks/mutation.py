"""Mutation testing of the machinery: which promises do the tests really pin?

    .venv/bin/python -m pip install cosmic-ray
    .venv/bin/python benchmarks/mutation.py order manifest    # modules named in pyproject.toml
    .venv/bin/python benchmarks/mutation.py                   # every module configured
    .venv/bin/python benchmarks/mutation.py --jobs 2 fastpath # two trees, mutants dealt out
    .venv/bin/python benchmarks/mutation.py --sample 40 locks # 40 mutants drawn (fixed seed)
    .venv/bin/python benchmarks/mutation.py --since main~3 --jobs 2   # only the lines a change touched
    .venv/bin/python benchmarks/mutation.py --sample 6 --seed "$(git rev-parse HEAD)"   # a fresh sample

``--since REF`` mutates only the lines changed since REF (``git diff REF``, the working tree's
committed state: commit first) in the configured modules, runs each module's tests against
each mutant, and prints each survivor as ``file:line  mutation  (tests run)``; a changed
module with no configured tests is named, so the change adds them. ``--sample N`` then caps
the mutants over the whole change (drawn with a fixed seed), for a change too large to
mutate whole in a few minutes.

The modules and the tests that exercise each are configured in ``pyproject.toml``,
``[tool.mypkg.mutation]`` (``timeout``: seconds before a mutant's test run counts as killed,
default 30; raised to 3x the unmutated tests' own time, so a slow suite is never a kill). cosmic-ray mutates files in place, so this runs in a copy of the
committed tree (``git archive HEAD``), with that copy first on ``PYTHONPATH``: the CLI tests'
``mypkg-migrate`` subprocesses import the mutated files too. It prints, per module, the
mutants killed, the survivors and the score, and each survivor's diff. Not part of CI: a
module takes minutes.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configured() -> dict[str, dict[str, str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypkg"]["mutation"]["modules"]


def typing_only_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Lines whose mutants are equivalent by construction: annotations (strings under
    ``from __future__ import annotations``, never evaluated) and ``TYPE_CHECKING`` blocks
    (never run). Their mutants survive every test, each after the full run: skipped."""
    spans: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def cover(node: ast.AST | None) -> None:
        if node is not None:  # (row, column) from and to, as cosmic-ray counts them
            spans.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            cover(node.returns)
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                        node.args.vararg, node.args.kwarg]:
                cover(arg.annotation if arg is not None else None)
        elif isinstance(node, ast.AnnAssign):
            cover(node.annotation)
        elif _is_type_checking(node):
            cover(node)
    return spans


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` or ``TYPE_CHECKING = False``."""
    if isinstance(node, ast.If):
        return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    return isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == "TYPE_CHECKING" for target in node.targets
    )


def changed_lines(since: str) -> dict[str, set[int]]:
    """Python files under mypkg/ changed since ``since`` (committed), with the line numbers
    each change added or edited in the new file (``git diff -U0``'s hunks)."""
    import re

    diff = subprocess.run(["git", "diff", "-U0", f"{since}..HEAD", "--", "mypkg"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    found: dict[str, set[int]] = {}
    path = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") and line.endswith(".py") else None
        elif path and line.startswith("@@"):
            match = re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)
            if match:
                start, count = int(match.group(1)), int(match.group(2) or 1)
                found.setdefault(path, set()).update(range(start, start + count))
    return {path: lines for path, lines in found.items() if lines}


class ModuleFailed(Exception):
    """One module could not be mutated (its unmutated tests fail): the others still run."""


def run_module(
    name: str, spec: dict[str, str], copies: list[Path], sample: int | None = None,
    lines: set[int] | None = None, seed: str | None = None,
) -> tuple[int, int, int, float, list[tuple[int, str]]]:
    """(mutants run, killed, skipped as typing-only, baseline seconds, survivors as
    (line, diff)). ``lines``: mutate only these lines (``--since``).

    With several copies of the tree, the mutants are dealt out among them and run at
    once (cosmic-ray mutates in place: one mutant per tree at a time)."""
    first = copies[0]
    # Each tree its own pytest temporary root: sessions sharing /tmp/pytest-of-USER clean up
    # each other's numbered folders (a new one is deletable until its lock is written), and a
    # test whose folder vanished under it would count as a kill. Each module its own too: a
    # process the previous module's last mutant left behind may still write in its folders.
    def tests_in(copy: Path) -> str:
        return (f"{sys.executable} -m pytest -x -q -p no:cacheprovider -n 0 "
                f"--basetemp={copy.parent / ('pytest-' + copy.name + '-' + name)} "
                f"{spec['tests']}")

    tests = tests_in(first)
    # The unmutated tests' own time: a mutant's run is cut at 3x that (an infinite loop
    # is a kill), never below the configured timeout, so a slow suite is never a kill.
    started = time.perf_counter()
    baseline = subprocess.run(shlex.split(tests), check=False, cwd=first, env=_env(first), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if baseline.returncode != 0:
        raise ModuleFailed(f"{name}: the unmutated tests fail; fix them first:\n{baseline.stdout[-2000:]}")
    timeout = max(float(spec.get("timeout", 30)), 3 * seconds * len(copies))
    bindir = Path(sys.executable).parent
    for copy in copies:
        (copy / f"{name}.toml").write_text(
            "[cosmic-ray]\n"
            f'module-path = "{spec["module"]}"\n'
            f"timeout = {timeout:.0f}.0\nexcluded-modules = []\n"
            f'test-command = "{tests_in(copy)}"\n'
            '[cosmic-ray.distributor]\nname = "local"\n'
        )
    session = first / f"{name}.sqlite"
    subprocess.run([str(bindir / "cosmic-ray"), "init", str(first / f"{name}.toml"), str(session)],
                   cwd=first, env=_env(first), check=True, capture_output=True)
    spans = typing_only_spans((first / spec["module"]).read_text())
    with sqlite3.connect(session) as db:
        # In source order (job ids are random): the same source gives the same sample.
        found = db.execute("SELECT job_id, start_pos_row, start_pos_col FROM mutation_specs "
                           "ORDER BY start_pos_row, start_pos_col, operator_name, occurrence").fetchall()
        doomed = [job for job, row, col in found if any(start <= (row, col) < end for start, end in spans)]
        if lines is not None:  # --since: the lines the change touched, and no other
            _drop(db, [job for job, row, _ in found if row not in lines and job not in set(doomed)])
            found = [(job, row, col) for job, row, col in found if row in lines]
        _drop(db, doomed)
        jobs = [job for job, _, _ in found if job not in set(doomed)]
        if sample is not None and sample < len(jobs):
            # A fixed seed over source order: the same sample every run of the same source
            # (--seed: another sample, e.g. drawn by a commit's hash, which nobody picks).
            kept = set(random.Random(name if seed is None else f"{seed}:{name}").sample(jobs, sample))
            _drop(db, [job for job in jobs if job not in kept])
            jobs = [job for job in jobs if job in kept]
    for copy in copies[1:]:
        shutil.copy(session, copy / session.name)
    for index, copy in enumerate(copies):
        with sqlite3.connect(copy / session.name) as db:
            _drop(db, [job for position, job in enumerate(jobs) if position % len(copies) != index])
    running = [
        subprocess.Popen([str(bindir / "cosmic-ray"), "exec", str(copy / f"{name}.toml"), str(copy / session.name)],
                         cwd=copy, env=_env(copy), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for copy in copies
    ]
    if any(process.wait() != 0 for process in running):
        raise ModuleFailed(f"{name}: cosmic-ray exec failed")
    outcomes = []
    for copy in copies:
        with sqlite3.connect(copy / session.name) as db:
            outcomes += db.execute("SELECT r.test_outcome, r.diff, s.start_pos_row FROM work_results r "
                                   "JOIN mutation_specs s ON s.job_id = r.job_id").fetchall()
    survivors = [(row, diff) for outcome, diff, row in outcomes if "SURVIVED" in str(outcome)]
    return len(outcomes), len(outcomes) - len(survivors), len([j for j in doomed if lines is None]), seconds, survivors


def _env(copy: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(copy)}


def _drop(db: sqlite3.Connection, jobs: list[str]) -> None:
    for job in jobs:
        db.execute("DELETE FROM mutation_specs WHERE job_id = ?", (job,))
        db.execute("DELETE FROM work_items WHERE job_id = ?", (job,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="names under [tool.mypkg.mutation.modules] (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="copies of the tree run at once (default 1)")
    parser.add_argument("--sample", type=int, help="at most this many mutants per module (with --since: over "
                        "the whole change), drawn with a fixed seed")
    parser.add_argument("--since", metavar="REF", help="mutate only the lines changed since REF")
    parser.add_argument("--seed", help="draw the --sample with this seed (default: the module's name)")
    args = parser.parse_args(argv)
    modules = configured()
    chosen = args.modules or list(modules)
    lines: dict[str, set[int]] = {}
    if args.since:
        lines = changed_lines(args.since)
        by_path = {spec["module"]: name for name, spec in modules.items()}
        for path in sorted(set(lines) - set(by_path)):
            print(f"{path}: changed, but no tests are configured for it in [tool.mypkg.mutation.modules]")
        # Modules named too: only those of the change (a large change, mutated where it matters most).
        chosen = [by_path[path] for path in sorted(lines) if path in by_path and (not args.modules or by_path[path] in args.modules)]
        total_lines = sum(len(lines[modules[name]["module"]]) for name in chosen)
        print(f"--since {args.since}: {len(chosen)} configured module(s), {total_lines} changed line(s)")
    with tempfile.TemporaryDirectory(prefix="mypkg-mutation-") as tmp:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
        copies = [Path(tmp) / f"tree{index}" for index in range(max(1, args.jobs))]
        for copy in copies:
            copy.mkdir()
            subprocess.run(["tar", "-x", "-C", str(copy)], input=archive, check=True)
        print(f"{'module':<28}{'mutants':>8}{'killed':>8}{'score':>8}{'typing':>8}{'tests s':>8}")
        totals = [0, 0]
        failed = []
        for name in chosen:
            path = modules[name]["module"]
            share = args.sample
            if args.since and args.sample is not None:  # the cap is over the change: shared by lines changed
                share = max(1, round(args.sample * len(lines[path]) / max(total_lines, 1)))
            try:
                total, killed, skipped, seconds, survivors = run_module(
                    name, modules[name], copies, share, lines.get(path) if args.since else None, args.seed)
            except ModuleFailed as exc:  # named, and the run goes on: a draw is per module
                print(f"{path:<28}  not run: {exc}", flush=True)
                failed.append(name)
                continue
            totals[0] += total
            totals[1] += killed
            print(f"{path:<28}{total:>8}{killed:>8}{killed / max(total, 1):>8.0%}"
                  f"{skipped:>8}{seconds:>8.0f}", flush=True)
            for row, diff in survivors:
                changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
                print(f"    {path}:{row}  {' | '.join(changed)}  ({modules[name]['tests']})")
        if args.since:
            print(f"--since {args.since}: {totals[0]} mutant(s) run, {totals[1]} killed, "
                  f"{totals[0] - totals[1]} survived")
        if failed:
            print(f"not run: {' '.join(failed)} (rerun them with the same --seed once their tests pass)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
