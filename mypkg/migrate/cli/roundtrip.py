"""``mypkg-migrate roundtrip [FROM:TO]``: options and printing; the work is
:mod:`..checks.roundtrip`'s (docs/roundtrip.md)."""

from __future__ import annotations

from ..errors import ExitCode
from .output import Output

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_options(parser: argparse.ArgumentParser) -> None:
    from . import types

    parser.add_argument("range", nargs="?", default=None, metavar="FROM:TO",
                        help="the revisions to round-trip (default: every one, base:heads)")
    parser.add_argument("--rows", type=types.count, default=20, metavar="N",
                        help="rows generated per table before each revision (default 20)")
    parser.add_argument("--report", action="store_true",
                        help="per revision: rows per table, seconds per move; on PostgreSQL the strongest "
                        "lock each upgrade took per table and the tables it rewrote")


def roundtrip(args: argparse.Namespace, out: Output) -> ExitCode:
    """Only an explicit --url: the environment's URL is a real database, never a scratch one."""
    from ..checks.roundtrip import roundtrip as run

    def progress(number: int, total: int, revision: str) -> None:
        # Long work shows progress in logs too: on stderr, so the result on stdout stays whole.
        if not args.json and not args.quiet:
            out.waiting(f"round-tripping {revision} ({number} of {total})")

    found = run(args.url, args.range, rows=args.rows, report=args.report, on_step=progress)

    def text() -> None:
        for step in found.steps:
            if args.report:
                _report(step, out)
        for note in found.notes:
            out.line(f"note: {note}")
        for finding in found.findings:
            out.result(finding.line())
        verdict = f"{len(found.findings)} finding(s)" if found.findings else "every row kept"
        out.line(f"{len(found.steps)} revision(s) round-tripped on {found.database}: {verdict}")

    out.data({"database": found.database, "steps": [_step(step) for step in found.steps],
              "findings": [finding._asdict() for finding in found.findings], "notes": found.notes}, text)
    return ExitCode.FAILURE if found.findings else ExitCode.OK


def _step(step: Any) -> dict[str, Any]:
    return {**step._asdict(), "seconds": {move: round(value, 3) for move, value in step.seconds.items()},
            "rewritten": None if step.rewritten is None else list(step.rewritten)}


def _report(step: Any, out: Output) -> None:
    out.line(f"{step.revision}  {step.message}")
    out.line(f"  rows:      {', '.join(f'{table} {count}' for table, count in step.rows.items()) or 'none'}")
    out.line("  seconds:   " + ", ".join(f"{move} {value:.3f}" for move, value in step.seconds.items()))
    if step.locks is not None:
        out.line(f"  locks:     {', '.join(f'{t} {m}' for t, m in sorted(step.locks.items())) or 'none'}")
        out.line(f"  rewritten: {', '.join(step.rewritten or ()) or 'none'}")

