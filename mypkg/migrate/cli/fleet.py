"""``mypkg-migrate fleet upgrade|downgrade|status [REV]``, ``fleet backfill run``: options, progress and the report.
The work is :mod:`..fleet`'s; this is parsing and printing."""

from __future__ import annotations

import sys
import time

from ..errors import ExitCode, UsageError
from ..identity import COMMAND as PROG
from .output import Output

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_options(parser: argparse.ArgumentParser) -> None:
    from . import types

    parser.add_argument("action", choices=("upgrade", "downgrade", "status", "backfill", "drift"),
                        help="what to do on every target (backfill run: its queued background backfills; drift: "
                        "its schema against the one its revision builds)")
    parser.add_argument("revision", nargs="?", default=None, metavar="REV",
                        help="upgrade: default head; downgrade: required (e.g. -1); backfill: run")
    parser.add_argument("--targets", action="append", default=[], metavar="FILE",
                        help="one database URL per line (# comments, blank lines ignored); repeatable")
    parser.add_argument("--sqlite-glob", action="append", default=[], metavar="PATTERN",
                        help="every SQLite file matching PATTERN (quote it); repeatable")
    parser.add_argument("--schemas", action="append", default=[], metavar="PATTERN",
                        help="every schema (PostgreSQL) or database (MySQL/MariaDB) of --url whose name "
                        "matches PATTERN, e.g. 'tenant_*'; repeatable")
    parser.add_argument("--jobs", type=types.count, default=2, metavar="N",
                        help="worker processes, each taking target after target (default 2)")
    parser.add_argument("--shard", metavar="I/N", default=None,
                        help="only the targets of shard I of N (stable hash of each target): "
                        "--shard $(JOB_COMPLETION_INDEX)/N in a Kubernetes Indexed Job")
    parser.add_argument("--max-failures", type=types.count, default=None, metavar="K",
                        help="after K failed targets, start no new one")
    parser.add_argument("--canary", type=types.count_or_zero, default=0, metavar="K",
                        help="migrate K targets first; if one fails, start no other")
    parser.add_argument("--lock-timeout", type=types.seconds, default=None, metavar="SECONDS",
                        help="per target: wait this long for another migrator (default 300)")
    parser.add_argument("--statement-lock-timeout", type=types.lock_seconds, default=None, metavar="SECONDS",
                        help="per target, PostgreSQL: as upgrade's")
    parser.add_argument("--phase", choices=("pre", "post"), default=None,
                        help="a rolling deploy's phase, per target (docs/deploying.md): upgrade --phase pre applies "
                        "pre-deploy revisions only; status --phase pre counts a target past them as ready")
    parser.add_argument("--plan", metavar="FILE", type=types.not_blank, default=None,
                        help="fleet upgrade: run a reviewed plan's revisions on each target (plan --out FILE); "
                        "a target at another revision than the plan's is refused, a failure of its own")
    parser.add_argument("--yes", action="store_true", help="confirm a downgrade to base on every target")
    parser.add_argument("--pause", type=types.seconds, default=None, metavar="SECONDS",
                        help="backfill run, per target: as backfill run's")
    parser.add_argument("--batch-seconds", type=types.seconds, default=None, metavar="SECONDS",
                        help="backfill run, per target: as backfill run's")
    parser.add_argument("--replica", action="append", default=[], metavar="URL", type=types.not_blank,
                        help="backfill run: a replica every target's batches wait for (repeatable)")
    parser.add_argument("--max-replica-lag", type=types.seconds, default=None, metavar="SECONDS",
                        help="backfill run: as backfill run's")
    parser.add_argument("--max-wait", type=types.seconds, default=None, metavar="SECONDS",
                        help="backfill run: as backfill run's")
    parser.add_argument("--allow-empty", action="store_true",
                        help="no target found is a success (by default an error: a glob with a typo matches nothing)")


def fleet(args: argparse.Namespace, out: Output) -> ExitCode:
    from ..database import settings
    from ..fleet import run, targets

    if not args.targets and not args.sqlite_glob and not args.schemas:
        raise UsageError("fleet needs targets: --targets FILE, --schemas PATTERN (with --url) "
                         "and/or --sqlite-glob PATTERN")
    if args.schema is not None:
        raise UsageError("fleet takes --schemas PATTERN (every matching schema of --url), not --schema")
    if args.action == "downgrade" and args.revision is None:
        raise UsageError("fleet downgrade needs a revision (e.g. -1)")
    if args.action == "downgrade" and args.revision == "base" and not args.yes:
        raise UsageError("downgrading every target to base drops every table: confirm with --yes")
    if args.action in ("status", "drift") and args.revision is not None:
        raise UsageError(f"fleet {args.action} takes no revision: it reports each target as it stands")
    if args.phase and (args.action == "downgrade" or args.revision is not None):
        raise UsageError("--phase chooses the revisions of fleet upgrade and status: give no revision, no downgrade")
    if args.plan is not None:
        from pathlib import Path

        from ..review.planfile import load

        if args.action != "upgrade" or args.revision is not None or args.phase:
            raise UsageError("--plan is for fleet upgrade, with no revision and no --phase: the plan chooses them")
        load(args.plan)  # a file that is no plan: said once, before any target
        args.plan = str(Path(args.plan).resolve())  # the workers read it too
    if args.action == "backfill":
        if args.revision != "run":
            raise UsageError("fleet backfill takes one action: fleet backfill run")
        if args.phase:
            raise UsageError("--phase is for fleet upgrade and status")
        if args.replica and args.max_replica_lag is None:
            raise UsageError("--replica is read to keep its lag under --max-replica-lag: give it")
        args.revision = None
    elif args.pause is not None or args.batch_seconds is not None or args.replica or args.max_wait is not None:
        raise UsageError("--pause, --batch-seconds, --replica and --max-wait are for fleet backfill run")
    if args.revision is not None:
        from ..history import graph

        graph.require_revision(args.revision)
    shard = targets.parse_shard(args.shard) if args.shard else None
    found = [t for path in args.targets for t in targets.from_file(path)]
    found += [t for pattern in args.sqlite_glob for t in targets.from_sqlite_glob(pattern)]
    if args.schemas:
        url = settings.resolve_url_string(args.url)
        found += targets.from_schemas(url, *args.schemas)
    if not found and not args.allow_empty:
        given = [f"--targets {path}" for path in args.targets] + [f"--sqlite-glob {pattern!r}" for pattern in
                                                                 args.sqlite_glob] + [f"--schemas {p!r}" for p in args.schemas]
        raise UsageError(f"fleet found no target ({', '.join(given)} named none); "
                         "give --allow-empty if an empty fleet is expected")
    chosen = targets.in_shard(targets.unique(found), shard)
    options = {"lock_timeout": args.lock_timeout, "statement_lock_timeout": args.statement_lock_timeout,
               "busy_timeout": settings.busy_timeout(), "confirm_base": args.yes, "phase": args.phase,
               "pause": args.pause, "batch_seconds": args.batch_seconds, "replicas": tuple(args.replica) or None,
               "max_replica_lag": args.max_replica_lag, "max_wait": args.max_wait, "plan": args.plan}
    progress = _Progress(len(chosen), quiet=args.quiet or args.json or out.json_log)
    result = run.run(args.action, chosen, args.revision or "head", jobs=args.jobs, max_failures=args.max_failures,
                     canary=args.canary, options=options, on_row=progress.row)
    progress.finish()
    summary = _summary(result, shard)
    out.data({"summary": summary, "targets": [_row_dict(row) for row in result.rows]}, lambda: _text(result, summary, out))
    return ExitCode.OK if result.ok else ExitCode.FAILURE


def _summary(result: Any, shard: tuple[int, int] | None) -> dict[str, Any]:
    from ..fleet.run import OUTCOMES, REACHED

    return {
        "action": result.action,
        "revision": result.revision,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "targets": len(result.rows),
        "reached": result.count(*REACHED),
        **{_key(outcome): result.count(outcome) for outcome in OUTCOMES},
        "stopped": result.stopped,
        "seconds": round(result.seconds, 3),
    }


def _key(outcome: str) -> str:
    """An outcome as a JSON key: ``not started`` -> ``not_started``."""
    return outcome.replace(" ", "_")


def _row_dict(row: Any) -> dict[str, Any]:
    return {"target": row.target, "before": list(row.before), "after": list(row.after), "outcome": row.outcome,
            "seconds": round(row.seconds, 3), "error": row.error}


def _text(result: Any, summary: dict[str, Any], out: Output) -> None:
    from ..fleet.run import OUTCOMES

    for row in result.rows:
        if row.outcome in ("failed", "behind", "drifted", "not started"):
            detail = f": {row.error}" if row.error else (f" (at {', '.join(row.after) or 'base'})" if row.after or
                                                           row.outcome == "behind" else "")
            out.line(f"{row.outcome:<11} {row.target}{detail}")
    counts = ", ".join(f"{summary[_key(outcome)]} {outcome}" for outcome in OUTCOMES if summary[_key(outcome)])
    shard = f" (shard {summary['shard']})" if summary["shard"] else ""
    what = {"status": "", "drift": "", "backfill": "run"}.get(result.action, result.revision)
    out.line(f"fleet {result.action} {what}".rstrip()
             + f"{shard}: {summary['targets']} target(s): {counts or 'none'} in {result.seconds:.1f}s")
    if result.stopped:
        out.line(f"stopped starting targets: {result.stopped}; rerun the same command to go on")
    elif not result.ok and result.action not in ("status", "drift"):
        out.line("rerun the same command once the failures are fixed: targets already there cost one read")


class _Progress:
    """On a terminal, one line rewritten in place; in a log, a line per failure and a
    progress line at each tenth of the fleet and at least every :data:`LOG_EVERY` seconds
    (a long fleet is never silent until its summary)."""

    #: Seconds between two progress lines in a log, at most.
    LOG_EVERY = 30.0

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total, self.quiet = total, quiet
        self.done = self.failed = 0
        self.started = self.logged = time.monotonic()
        self.terminal = sys.stderr.isatty()

    def _line(self) -> str:
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        left = (self.total - self.done) / rate if rate else 0
        return f"{PROG}: fleet: {self.done} of {self.total} done, {self.failed} failed, {rate:.1f}/s, {left:.0f}s left"

    def row(self, row: Any) -> None:
        self.done += 1
        self.failed += row.outcome == "failed"
        if self.quiet:
            return
        if self.terminal:
            print(f"\r{self._line()} ", end="", file=sys.stderr, flush=True)
            return
        if row.outcome == "failed":
            print(f"{PROG}: fleet: {row.target} failed: {row.error}", file=sys.stderr, flush=True)
        tenth = self.done * 10 // self.total > (self.done - 1) * 10 // self.total
        if tenth or time.monotonic() - self.logged >= self.LOG_EVERY:
            self.logged = time.monotonic()
            print(self._line(), file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.terminal and not self.quiet and self.done:
            print(file=sys.stderr, flush=True)
