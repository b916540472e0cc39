"""``mypkg-migrate``: parsing and printing only; the work is in :mod:`..commands`.

Nothing heavy is imported at module level: a no-op ``upgrade`` or ``status`` is
answered by :mod:`..fast.answers` without SQLAlchemy or Alembic.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .. import events
from ..errors import ExitCode, MigrateError, UsageError
from ..identity import (
    BUSY_TIMEOUT_VAR,
    CONNECT_TIMEOUT_VAR,
    EXTENSIONS_SCHEMA_VAR,
    LEASE_SECONDS_VAR,
    LOCK_MODE_VAR,
    LOG_FORMAT_VAR,
)
from ..identity import COMMAND as PROG
from . import observers, process, reads
from .output import Output, of_plugin, short, step_dict
from .parser import COMMANDS, OneLineErrorParser, build_parser

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any


def _run_migration(args: argparse.Namespace, out: Output) -> ExitCode:
    target = _target_revision(args)
    reviewed = args.command == "upgrade" and args.plan is not None  # checked on the full path, under the lock
    if args.command == "upgrade" and target == "head" and not (args.sql or args.backup or args.baseline or reviewed):
        at_head = reads.fast_status(args, upgrade=True)
        if at_head is not None:  # the deploy-time common case, without SQLAlchemy
            out.data(_migration_dict(at_head.masked_url, at_head.current, at_head.current, [], None),
                     lambda: out.line(f"{at_head.masked_url}: nothing to do, at {short(at_head.current)}"))
            return ExitCode.OK
    installed = reads.fast_install(args, target, applied_line(out)) if args.command == "upgrade" and not reviewed \
        else None
    if installed is not None:  # an empty database at a checkpointed head, without SQLAlchemy
        return _migrated(args, out, installed)
    from .. import commands
    from ..database import settings

    if args.sql and args.json:
        raise UsageError("--sql prints the SQL itself, --json a result: give one")
    if args.sql and args.backup:
        raise UsageError("--backup copies the database before a migration runs; --sql runs none: drop one")
    if args.sql and reviewed:
        raise UsageError("--plan runs a reviewed plan, --sql prints SQL: give one (plan prints its statements)")
    if args.sql and args.command == "upgrade" and args.phase:
        raise UsageError("--phase chooses from what the database holds; for SQL give the range: --sql FROM:TO")
    if args.sql and args.command == "upgrade" and (args.only or args.without):
        raise UsageError("--only and --without choose branches to run; for SQL give the range: --sql base:NAME@head")
    if args.sql:
        from ..runtime.offline import OfflineSQLError

        try:
            no_checkpoint = args.command == "upgrade" and args.no_checkpoint
            _write_sql(commands.offline_sql(args.command, target, args.url, use_checkpoints=not no_checkpoint), out)
        except OfflineSQLError as exc:
            _write_sql(exc.sql, out)  # what rendered is kept; the error names the rest
            raise
        return ExitCode.OK
    if args.from_version:
        raise UsageError("--from-version is for offline SQL: add --sql")

    options = {
        "on_applied": applied_line(out),
        "lock_timeout": args.lock_timeout,
        "statement_lock_timeout": args.statement_lock_timeout,
        "on_wait": out.waiting,
        "backup": args.backup,
        "busy_timeout": settings.busy_timeout(),
    }
    if args.command == "upgrade":
        from ..data.progress import StderrProgress

        result = commands.upgrade(args.url, target, ignore_checksums=args.ignore_checksums, baseline=args.baseline,
                                  on_progress=None if out.quiet or out.json_log else StderrProgress(sys.stderr),
                                  use_checkpoints=not args.no_checkpoint, only=args.only, without=args.without,
                                  phase=args.phase, plan=args.plan, **options)
    else:
        result = commands.downgrade(args.url, target, confirm_base=args.yes, **options)
    return _migrated(args, out, result)


def applied_line(out: Output) -> Callable[[Any], None]:
    """The line each revision applied or reverted prints."""
    def applied(step: Any) -> None:
        arrow = "applied " if step.direction == "upgrade" else "reverted"
        out.line(f"{arrow} {step.revision}  {step.message}{of_plugin(step)}  ({step.seconds * 1000:.0f} ms)")

    return applied


def _migrated(args: argparse.Namespace, out: Output, result: Any) -> ExitCode:
    """What an upgrade or a downgrade did: a line, or the JSON result."""
    def text() -> None:
        if result.backup:
            out.line(f"backup: {result.backup}")
        if not result.applied:
            out.line(f"{result.database}: nothing to do, at {short(result.after)}")
        else:
            out.line(f"{result.database}: {args.command}d from {short(result.before)} to {short(result.after)}")

    out.data(_migration_dict(result.database, result.before, result.after, result.applied, result.backup), text)
    return ExitCode.OK


def _migration_dict(database: str, before: Sequence[str], after: Sequence[str], applied: Sequence[Any],
                    backup: str | None) -> dict[str, Any]:
    return {"database": database, "before": list(before), "after": list(after),
            "applied": [step_dict(step) for step in applied], "backup": backup}


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


def _stamp(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands
    from ..database import settings

    result = commands.stamp(
        args.url, args.revision, force=args.force, lock_timeout=args.lock_timeout, on_wait=out.waiting,
        busy_timeout=settings.busy_timeout(),
    )
    out.data(_migration_dict(result.database, result.before, result.after, [], None),
             lambda: out.line(f"{result.database}: stamped {short(result.after)} (was {short(result.before)})"))
    return ExitCode.OK


def _repair(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    if args.checksums:
        if args.force:
            raise UsageError("--force is for --applied or --reverted, not --checksums")
        realigned = commands.realign_checksums(args.url, args.revision, lock_timeout=args.lock_timeout,
                                               on_wait=out.waiting)

        def text() -> None:
            for rev in realigned:
                out.line(f"realigned {rev}: the shipped script is now the one recorded")
            if not realigned:
                out.line("every applied revision's checksum matches the shipped script: nothing to realign")

        out.data({"realigned": list(realigned)}, text)
        return ExitCode.OK
    if args.revision is None:
        raise UsageError("repair --applied or --reverted needs the revision (REV)")

    result = commands.repair(args.url, args.revision, applied=args.applied, force=args.force,
                             lock_timeout=args.lock_timeout, on_wait=out.waiting)
    way = "applied" if args.applied else "reverted"
    out.data({**_migration_dict(result.database, result.before, result.after, [], None),
              "revision": args.revision, "recorded": way},
             lambda: out.line(f"{result.database}: recorded {args.revision} as {way} by hand; at {short(result.after)}"))
    return ExitCode.OK


def _write_sql(sql: str, out: Output) -> None:
    """The SQL is the result: one that cannot be written (a full disk) fails the command."""
    try:
        out.stream.write(sql)
        out.stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            sys.stdout = out.stream = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        raise MigrateError(f"cannot write the SQL to stdout ({exc.strerror}): it is incomplete") from None


def _checkpoint(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    if args.retire and args.replay_on:
        raise UsageError("--retire removes scripts; --replay-on writes a checkpoint: give one")
    if args.prove:
        if args.revision is not None or args.retire:
            raise UsageError("checkpoint --prove proves every checkpoint: give no REV and no --retire")
        problems = commands.prove_checkpoints(args.replay_on)
        out.data({"problems": problems}, lambda: [out.line(line) for line in problems] or out.line(
            "every checkpoint installs what its replay builds"))
        return ExitCode.FAILURE if problems else ExitCode.OK
    if args.revision is None:
        raise UsageError("checkpoint needs REV (or --prove)")
    path = commands.checkpoint(args.revision, args.replay_on, retire=args.retire)
    out.data({"revision": args.revision, "path": str(path), "retired": args.retire},
             lambda: out.line(f"{'retired the scripts before' if args.retire else 'wrote'} {path}"))
    return ExitCode.OK


#: Commands whose output is their result: failing to write it fails them.
RESULTS = frozenset({"current", "status", "history", "heads", "verify", "check", "lint", "roundtrip", "plan"})


def _roundtrip(args: argparse.Namespace, out: Output) -> ExitCode:
    from .roundtrip import roundtrip

    return roundtrip(args, out)


def _plan(args: argparse.Namespace, out: Output) -> ExitCode:
    from .plan import plan

    return plan(args, out)


def _fleet(args: argparse.Namespace, out: Output) -> ExitCode:
    from .fleet import fleet

    return fleet(args, out)


def _backfill(args: argparse.Namespace, out: Output) -> ExitCode:
    from .backfills import backfill

    return backfill(args, out)


HANDLERS: dict[str, Callable[[argparse.Namespace, Output], ExitCode]] = {
    "upgrade": _run_migration,
    "downgrade": _run_migration,
    "current": reads.current,
    "history": reads.history,
    "heads": reads.heads,
    "stamp": _stamp,
    "status": reads.status,
    "check": reads.check,
    "drift": reads.drift,
    "verify": reads.verify,
    "repair": _repair,
    "checkpoint": _checkpoint,
    "lint": reads.lint,
    "fleet": _fleet,
    "roundtrip": _roundtrip,
    "backfill": _backfill,
    "plan": _plan,
}


def _command_in(argv: list[str]) -> str | None:
    """The command named in argv, if any (the value after --url is not a command)."""
    previous = ""
    for token in argv:
        if token in COMMANDS and previous != "--url":
            return token
        previous = token
    return None


def _json_log_in(argv: Sequence[str]) -> bool:
    """``--log-format json`` asked for, before the parser could say so (a usage error)."""
    for index, token in enumerate(argv):
        if token == "--log-format":
            return argv[index + 1:index + 2] == ["json"]
        if token.startswith("--log-format="):
            return token.partition("=")[2] == "json"
    return os.environ.get(LOG_FORMAT_VAR, "").strip() == "json"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mypkg-migrate``; returns the exit code."""
    whole_process = argv is None  # the console script or python -m, not a caller's own program
    argv = list(sys.argv[1:] if argv is None else argv)
    if whole_process:  # a C locale's ASCII stdout: a non-ASCII path is printed escaped, not a crash
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    OneLineErrorParser.as_json = "--json" in argv  # a usage error under --json is JSON too
    OneLineErrorParser.json_log = _json_log_in(argv)  # ... and an event under --log-format json
    OneLineErrorParser.command = _command_in(argv)
    args = build_parser(only=_command_in(argv)).parse_args(argv)
    for name, default in (("url", None), ("schema", None), ("json", False), ("verbose", False), ("quiet", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if hasattr(args, "connect_timeout"):
        # Read by every connection this process makes (settings.connect_timeout()).
        os.environ[CONNECT_TIMEOUT_VAR] = repr(args.connect_timeout)
    if hasattr(args, "busy_timeout"):  # likewise for every SQLite connection, the fast path's too
        os.environ[BUSY_TIMEOUT_VAR] = repr(args.busy_timeout)
    if hasattr(args, "lock"):  # and for the migration lock of every command that writes
        os.environ[LOCK_MODE_VAR] = args.lock
    if hasattr(args, "lease"):
        os.environ[LEASE_SECONDS_VAR] = repr(args.lease)
    if hasattr(args, "extensions_schema"):  # read where a tenant's engine is made, a worker's too
        os.environ[EXTENSIONS_SCHEMA_VAR] = args.extensions_schema
    if args.verbose:
        import logging  # only here: every start-up pays for what it imports

        logging.basicConfig(level=logging.INFO, format="%(levelname)-5s [%(name)s] %(message)s")
    out = Output(as_json=args.json, quiet=args.quiet, is_result=args.command in RESULTS, command=args.command)
    try:
        out.json_log = observers.log_format(args) == "json"
    except UsageError as exc:
        out.error(str(exc), int(exc.exit_code))
        return int(exc.exit_code)
    process.skip_template_highlighting()
    previous = process.terminate_like_interrupt()
    # Under --json and --sql stdout holds the result alone: anything else printing there (an
    # application the scripts import, logging to stdout as zenml's does) goes to stderr.
    result_alone = bool(args.json or getattr(args, "sql", False))
    if result_alone:
        sys.stdout = sys.stderr
    try:
        with observers.listening(args, out), events.command(args.command, lambda: observers.target_of(args)) as told:
            told["exit_code"] = code = _run(args, out, told)
            return code
    finally:
        if result_alone:
            sys.stdout = out.stream
        process.after_the_outcome(previous, whole_process=whole_process)


def _run(args: argparse.Namespace, out: Output, told: dict[str, object]) -> int:
    """The command, its failures turned into one line (``told``: for ``command.end``) and an exit code."""
    try:
        if {CONNECT_TIMEOUT_VAR, BUSY_TIMEOUT_VAR, LOCK_MODE_VAR, LEASE_SECONDS_VAR,
                EXTENSIONS_SCHEMA_VAR} & set(os.environ):
            from ..database import settings

            settings.connect_timeout()  # a bad value is a usage error whatever the database
            settings.busy_timeout()
            settings.lock_mode()
            settings.lease_seconds()
            settings.extensions_schema()
        if args.schema is not None and args.command != "fleet":
            from ..database import settings

            # One form for a tenant's schema, whatever reads it: the URL's schema= parameter.
            args.url = settings.with_schema(settings.resolve_url_string(args.url), args.schema)
        return int(HANDLERS[args.command](args, out))
    except MigrateError as exc:
        if args.verbose:
            import logging

            logging.getLogger(__name__).exception("failed")
        told["error"] = str(exc)
        out.error(str(exc), int(exc.exit_code), backup=getattr(exc, "backup", None))
        return int(exc.exit_code)
    except KeyboardInterrupt as stop:  # the run loop says what the stop left (runner._interrupted)
        terminated = isinstance(stop, process.Terminated)
        what = str(stop) or "nothing was left half done; the database is at the last revision that completed"
        told["error"] = f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: {what}"
        if out.as_json:
            out.error(str(told["error"]), int(ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED))
        elif not out.json_log:
            print(f"{PROG}: {told['error']}", file=sys.stderr)
        return int(ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `mypkg-migrate history | head`: the reader left, as in any CLI
        with contextlib.suppress(OSError):
            sys.stdout = out.stream = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 141
    except Exception as exc:  # noqa: BLE001 - a bug or an environment problem: one line still
        if args.verbose:
            raise
        told["error"] = f"{type(exc).__name__}: {exc}"
        out.error(f"{told['error']} (run with -v for details)", int(ExitCode.FAILURE))
        return int(ExitCode.FAILURE)


if __name__ == "__main__":
    sys.exit(main())
