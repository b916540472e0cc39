"""``mypkg-migrate backfill run|status|pause|resume|cancel``: options and printing; the work
is :mod:`mypkg.batch`'s and :mod:`..data.worker`'s (docs/background-backfills.md)."""

from __future__ import annotations

from ..errors import ExitCode, UsageError
from .output import Output

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

ACTIONS = ("run", "status", "pause", "resume", "cancel")


def add_options(parser: argparse.ArgumentParser) -> None:
    from . import types

    parser.add_argument("action", choices=ACTIONS, help="run: the worker; status: every background backfill; "
                        "pause, resume, cancel NAME")
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="pause, resume, cancel: REV (every backfill it queued) or REV:TABLE")
    parser.add_argument("--once", action="store_true",
                        help="run: until nothing is queued, then exit (a Job); without it, for ever (a Deployment)")
    parser.add_argument("--pause", type=types.seconds, default=0.0, metavar="SECONDS",
                        help="run: seconds between batches (default 0)")
    parser.add_argument("--batch-seconds", type=types.seconds, metavar="SECONDS",
                        help="run: adapt each backfill's batch size so a batch takes about this long")
    parser.add_argument("--replica", action="append", default=[], metavar="URL", type=types.not_blank,
                        help="run: a replica whose lag is read before each batch (repeatable)")
    parser.add_argument("--max-replica-lag", type=types.seconds, metavar="SECONDS",
                        help="run: wait while a --replica lags more than this, or cannot be read")
    parser.add_argument("--max-wait", type=types.seconds, metavar="SECONDS",
                        help="run: the longest to wait for the replicas at a time, then exit 1 (nothing lost); "
                        "default: for ever")
    parser.add_argument("--poll", type=types.seconds, default=1.0, metavar="SECONDS",
                        help="run: how often to read the replicas while waiting, and to look for new work "
                        "(default 1)")


def backfill(args: argparse.Namespace, out: Output) -> ExitCode:
    import mypkg.batch as api

    if args.action in ("pause", "resume", "cancel") and not args.name:
        raise UsageError(f"backfill {args.action} needs NAME: REV or REV:TABLE (backfill status lists them)")
    if args.action in ("run", "status") and args.name:
        raise UsageError(f"backfill {args.action} takes no NAME")
    if args.replica and args.max_replica_lag is None:
        raise UsageError("--replica is read to keep its lag under --max-replica-lag: give it")
    if args.action == "run":
        return _run(args, out, api)
    found = api.background(args.url) if args.action == "status" else getattr(api, args.action)(args.name, args.url)

    def text() -> None:
        if not found:
            out.line("no background backfill")
        for queued in found:
            out.line(describe(queued))

    out.data({"action": args.action, "backfills": [as_dict(queued) for queued in found]}, text)
    return ExitCode.OK


def _run(args: argparse.Namespace, out: Output, api: Any) -> ExitCode:
    from ..data.progress import StderrProgress

    progress = None if out.quiet or out.json_log or args.json else StderrProgress(__import__("sys").stderr)
    rows = api.run_background(args.url, once=args.once, pause=args.pause, batch_seconds=args.batch_seconds,
                              replicas=args.replica, max_replica_lag=args.max_replica_lag, max_wait=args.max_wait,
                              poll=args.poll, on_progress=progress, on_wait=out.waiting)
    left = [queued for queued in api.background(args.url) if queued.state not in ("finished", "cancelled")]

    def text() -> None:
        out.line(f"{rows} row(s) updated; {len(left)} background backfill(s) left"
                 + "".join(f"\n  {describe(queued)}" for queued in left))

    out.data({"action": "run", "rows": rows, "backfills": [as_dict(queued) for queued in left]}, text)
    return ExitCode.OK


def describe(queued: Any) -> str:
    """One backfill on one line: rows, share, rate, time left, state."""
    share = f" ({100 * queued.done // queued.total}%)" if queued.total else ""
    rate = f", {queued.rate:,.0f} rows/s" if queued.rate else ""
    left = f", {queued.eta:,.0f}s left" if queued.eta is not None and queued.state == "queued" else ""
    error = f": {queued.error}" if queued.error else ""
    return f"{queued.name}  {queued.done:,} of {queued.total:,} rows{share}{rate}{left}  [{queued.state}{error}]"


def as_dict(queued: Any) -> dict[str, Any]:
    return {**queued._asdict(), "seconds": round(queued.seconds, 3), "rate": round(queued.rate, 1), "eta":
            None if queued.eta is None else round(queued.eta, 1)}
