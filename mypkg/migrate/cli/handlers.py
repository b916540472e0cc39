"""``mypkg-migrate``: parsing and printing only; the work is in :mod:`.commands`.

Nothing heavy is imported at module level: a no-op ``upgrade`` or ``status`` is
answered by :mod:`.fastpath` without SQLAlchemy or Alembic.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import ExitCode, MigrateError, UsageError
from ..identity import BUSY_TIMEOUT_VAR, CONNECT_TIMEOUT_VAR, PACKAGE
from ..identity import COMMAND as PROG
from . import process
from .output import Output, revision_dict, short
from .parser import COMMANDS, build_parser

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any




def _run_migration(args: argparse.Namespace, out: Output) -> ExitCode:
    target = _target_revision(args)
    if args.command == "upgrade" and target == "head" and not args.sql and not args.backup and not args.baseline:
        at_head = _fast_status(args, upgrade=True)
        if at_head is not None:  # the deploy-time common case, without SQLAlchemy
            out.line(f"{at_head.database}: nothing to do, at {short(at_head.current)}")
            return ExitCode.OK
    from .. import commands
    from ..database import settings

    if args.sql and args.backup:
        raise UsageError("--backup copies the database before a migration runs; --sql runs none: drop one")
    if args.sql:
        from ..runtime.offline import OfflineSQLError

        try:
            sys.stdout.write(commands.offline_sql(args.command, target, args.url))
        except OfflineSQLError as exc:
            sys.stdout.write(exc.sql)  # what rendered is kept; the error names the rest
            sys.stdout.flush()
            raise
        return ExitCode.OK
    if args.from_version:
        raise UsageError("--from-version is for offline SQL: add --sql")

    def applied(step: commands.AppliedRevision) -> None:
        arrow = "applied " if step.direction == "upgrade" else "reverted"
        out.line(f"{arrow} {step.revision}  {step.message}  ({step.seconds * 1000:.0f} ms)")

    options = {
        "on_applied": applied,
        "lock_timeout": args.lock_timeout,
        "statement_lock_timeout": args.statement_lock_timeout,
        "on_wait": out.waiting,
        "backup": args.backup,
        "busy_timeout": settings.busy_timeout(),
    }
    if args.command == "upgrade":
        from ..runtime.progress import StderrProgress

        result = commands.upgrade(args.url, target, ignore_checksums=args.ignore_checksums, baseline=args.baseline,
                                  on_progress=None if out.quiet else StderrProgress(sys.stderr), **options)
    else:
        result = commands.downgrade(args.url, target, confirm_base=args.yes, **options)
    if result.backup:
        out.line(f"backup: {result.backup}")
    if not result.applied:
        out.line(f"{result.database}: nothing to do, at {short(result.after)}")
    else:
        out.line(
            f"{result.database}: {args.command}d from {short(result.before)} "
            f"to {short(result.after)}"
        )
    return ExitCode.OK


def _target_revision(args: argparse.Namespace) -> str:
    """REV, or the head of --to-version; with --sql, a FROM:TO range."""
    from ...releases import revision_for

    if args.to_version and args.revision:
        raise UsageError("give a revision or --to-version, not both")
    if args.to_version:
        target = revision_for(args.to_version)
    elif args.revision:
        target = args.revision
    elif args.command == "upgrade":
        target = "head"
    else:
        raise UsageError("downgrade needs a revision (e.g. -1) or --to-version")
    if args.from_version:
        if ":" in target:
            raise UsageError("give --from-version or a FROM:TO range, not both")
        target = f"{revision_for(args.from_version)}:{target}"
    return target


def _fast_status(args: argparse.Namespace, *, upgrade: bool = False) -> Any:
    """The fast path's answer (see :mod:`.fastpath`), or None to take the full path."""
    from ..database.settings import resolve_url_string
    from ..fast import answers as fastpath

    if args.verbose or not fastpath.enabled():
        return None
    url = resolve_url_string(args.url)
    return fastpath.nothing_to_upgrade(url) if upgrade else fastpath.status(url)


def _full_status(args: argparse.Namespace) -> Any:
    from .. import commands

    return commands.status(args.url)


def _base(database: str) -> str:
    """No revision: an empty database, or (SQLite) no file at all, which a typo in the path
    looks like: say which."""
    path = database.removeprefix("sqlite:///") if database.startswith("sqlite:///") else ""
    if path and "?" not in path and path != ":memory:" and not os.path.exists(path):
        return f"base (no database: {path} does not exist; upgrade creates it)"
    return "base (empty database)"


def _current(args: argparse.Namespace, out: Output) -> ExitCode:
    state = _fast_status(args) or _full_status(args)

    def text() -> None:
        if not state.current:
            out.line(_base(state.database))
        for rev in state.current:
            message = next((r.message for r in state.applied if r.revision == rev), "")
            head = " (head)" if rev in state.heads else ""
            out.line(f"{rev}{head}  {message}")

    out.data(
        {"database": state.database, "current": list(state.current), "at_head": state.at_head},
        text,
    )
    return ExitCode.OK


def _status(args: argparse.Namespace, out: Output) -> ExitCode:
    if args.wait is not None:
        from .. import commands

        def waiting(state: commands.Status) -> None:
            print(
                f"waiting up to {args.wait:g}s for {state.database} to reach head "
                f"({len(state.pending)} revision(s) pending)",
                file=sys.stderr,
                flush=True,
            )

        state = commands.wait_for_head(args.url, args.wait, on_wait=None if out.quiet else waiting)
    else:
        state = _fast_status(args) or _full_status(args)

    def text() -> None:
        out.line(f"database: {state.database}")
        out.line(f"current:  {short(state.current) if state.current else _base(state.database)}")
        out.line(f"head:     {short(state.heads)}")
        out.line(f"applied:  {len(state.applied)} revision(s)")
        out.line(f"pending:  {len(state.pending)} revision(s)")
        for stopped in state.interrupted:
            from ..runtime.progress import describe

            out.line(f"stopped:  {describe(stopped)}; {PROG} upgrade continues it")
        for rev in state.needs_repair:
            out.line(f"repair:   {rev} failed part way; fix the schema, then {PROG} repair {rev} --applied or --reverted")
        for rev in state.pending:
            out.line(f"  {rev.revision}  {rev.message}")

    out.data(
        {
            "database": state.database,
            "current": list(state.current),
            "heads": list(state.heads),
            "at_head": state.at_head,
            "applied": [revision_dict(rev) for rev in state.applied],
            "pending": [revision_dict(rev) for rev in state.pending],
            "needs_repair": list(state.needs_repair),
            "interrupted": [stopped._asdict() for stopped in state.interrupted],
        },
        text,
    )
    return ExitCode.OK if state.at_head else ExitCode.FAILURE


def _history(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    if args.applied:
        return _applied_history(args, out)
    revisions = commands.history()

    def text() -> None:
        for rev in revisions:
            parent = ", ".join(rev.down_revisions) or "<base>"
            head = " (head)" if rev.is_head else ""
            out.line(f"{parent} -> {rev.revision}{head}, {rev.message}")

    out.data([revision_dict(rev) for rev in revisions], text)
    return ExitCode.OK


def _applied_history(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    rows = commands.applied_history(args.url)

    def text() -> None:
        if not rows:
            out.line(f"the ledger is empty: nothing migrated by {PROG} yet")
        for row in rows:
            out.line(
                f"{row.finished_at:%Y-%m-%d %H:%M:%S}Z  {row.revision}  {row.direction:<9}  "
                f"{row.outcome:<8}  {row.duration_ms:7.0f} ms  {PACKAGE} {row.package_version}"
                f"  sha256 {(row.checksum or '-')[:12]}" + (f"  {row.detail}" if row.detail else "")
            )

    payload = [
        {
            **{k: getattr(row, k) for k in ("id", "revision", "direction", "checksum",
                                            "package_version", "duration_ms", "outcome", "detail")},
            "started_at": row.started_at.isoformat(),
            "finished_at": row.finished_at.isoformat(),
        }
        for row in rows
    ]
    out.data(payload, text)
    return ExitCode.OK


def _verify(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    problems = commands.verify(args.url)

    def text() -> None:
        if not problems:
            out.line("every applied revision matches the script shipped")
            return
        print(f"{len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem.revision}  {problem.kind}: {problem.detail}")

    out.data(
        {
            "ok": not problems,
            "problems": [
                {"revision": p.revision, "kind": p.kind, "detail": p.detail} for p in problems
            ],
        },
        text,
    )
    return ExitCode.FAILURE if problems else ExitCode.OK


def _heads(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    found = commands.heads()
    out.data(list(found), lambda: [out.line(rev) for rev in found])
    return ExitCode.OK


def _stamp(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands
    from ..database import settings

    result = commands.stamp(
        args.url, args.revision, force=args.force, lock_timeout=args.lock_timeout, on_wait=out.waiting,
        busy_timeout=settings.busy_timeout(),
    )
    out.line(f"{result.database}: stamped {short(result.after)} (was {short(result.before)})")
    return ExitCode.OK


def _check(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    differences = commands.check(args.url)
    if not differences:
        out.line("no differences: the database matches the models")
        return ExitCode.OK
    print(f"{len(differences)} difference(s) between the models and the database:")
    for difference in differences:
        print(f"  {difference}")
    return ExitCode.FAILURE


def _lint(args: argparse.Namespace, out: Output) -> ExitCode:
    from pathlib import Path

    from ..checks import lint

    if args.record_release:
        path, count = lint.record_release(args.record_release)
        out.line(f"recorded the checksums of {count} script(s) of release {args.record_release} in {path}")
        return ExitCode.OK
    findings, squawked = lint.lint(lint.range_of(args.range), args.dialect, lint.load_settings(Path.cwd()))
    if not squawked and args.dialect == "postgresql":
        print(f"{PROG}: squawk is not installed, so only {PACKAGE}'s own rules ran: "
              f"pip install '{PACKAGE}[lint]' (squawk-cli; in a conda environment too)", file=sys.stderr)

    def text() -> None:
        if not findings:
            out.line("no findings")
        for found in findings:
            out.line(f"{found.revision}  {found.rule}  {found.statement}  -> {found.fix}")

    out.data([found._asdict() for found in findings], text)
    return ExitCode.FAILURE if findings else ExitCode.OK


def _repair(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    if args.checksums:
        if args.force:
            raise UsageError("--force is for --applied or --reverted, not --checksums")
        realigned = commands.realign_checksums(args.url, args.revision, lock_timeout=args.lock_timeout,
                                               on_wait=out.waiting)
        for rev in realigned:
            out.line(f"realigned {rev}: the shipped script is now the one recorded")
        if not realigned:
            out.line("every applied revision's checksum matches the shipped script: nothing to realign")
        return ExitCode.OK
    if args.revision is None:
        raise UsageError("repair --applied or --reverted needs the revision (REV)")

    result = commands.repair(args.url, args.revision, applied=args.applied, force=args.force,
                             lock_timeout=args.lock_timeout, on_wait=out.waiting)
    way = "applied" if args.applied else "reverted"
    out.line(f"{result.database}: recorded {args.revision} as {way} by hand; at {short(result.after)}")
    return ExitCode.OK


HANDLERS: dict[str, Callable[[argparse.Namespace, Output], ExitCode]] = {
    "upgrade": _run_migration,
    "downgrade": _run_migration,
    "current": _current,
    "history": _history,
    "heads": _heads,
    "stamp": _stamp,
    "status": _status,
    "check": _check,
    "verify": _verify,
    "repair": _repair,
    "lint": _lint,
}


def _command_in(argv: list[str]) -> str | None:
    """The command named in argv, if any (the value after --url is not a command)."""
    previous = ""
    for token in argv:
        if token in COMMANDS and previous != "--url":
            return token
        previous = token
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mypkg-migrate``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(only=_command_in(argv)).parse_args(argv)
    for name, default in (("url", None), ("json", False), ("verbose", False), ("quiet", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if hasattr(args, "connect_timeout"):
        # Read by every connection this process makes (settings.connect_timeout()).
        os.environ[CONNECT_TIMEOUT_VAR] = repr(args.connect_timeout)
    if hasattr(args, "busy_timeout"):  # likewise for every SQLite connection, the fast path's too
        os.environ[BUSY_TIMEOUT_VAR] = repr(args.busy_timeout)
    if args.verbose:
        import logging  # only here: every start-up pays for what it imports

        logging.basicConfig(level=logging.INFO, format="%(levelname)-5s [%(name)s] %(message)s")
    out = Output(as_json=args.json, quiet=args.quiet)
    process.skip_template_highlighting()
    process.terminate_like_interrupt()
    try:
        if CONNECT_TIMEOUT_VAR in os.environ or BUSY_TIMEOUT_VAR in os.environ:
            from ..database import settings

            settings.connect_timeout()  # a bad value is a usage error whatever the database
            settings.busy_timeout()
        return int(HANDLERS[args.command](args, out))
    except MigrateError as exc:
        if args.verbose:
            import logging

            logging.getLogger(__name__).exception("failed")
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt as stop:  # the run loop says what the stop left (runner._interrupted)
        terminated = isinstance(stop, process.Terminated)
        what = str(stop) or "nothing was left half done; the database is at the last revision that completed"
        print(f"{PROG}: {'terminated (SIGTERM)' if terminated else 'interrupted'}: {what}", file=sys.stderr)
        return int(ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `mypkg-migrate history | head`: the reader left, as in any CLI
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 141
    except Exception as exc:  # noqa: BLE001 - a bug or an environment problem: one line still
        if args.verbose:
            raise
        print(f"{PROG}: error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return int(ExitCode.FAILURE)


if __name__ == "__main__":
    sys.exit(main())
