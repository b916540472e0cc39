"""``mypkg-migrate``: parsing and printing only; the work is in :mod:`mypkg.api`.

Nothing heavy is imported at module level, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from .errors import ExitCode, MigrateError, UsageError
from .settings import DEFAULT_LOCK_TIMEOUT, DEFAULT_URL, ENV_VAR

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

PROG = "mypkg-migrate"

DESCRIPTION = f"""\
Migrate a database to the schema this mypkg package ships.

The database is --url, else ${ENV_VAR}, else {DEFAULT_URL} (a file in the
working directory). Passwords in URLs are never printed.

exit codes: 0 success (status: at head), 1 failure (status: revisions pending;
check: differences), 2 usage error (bad option, malformed URL, unknown revision)."""

EPILOG = f"""\
examples:
  {PROG} upgrade                         # the default SQLite file, to head
  {PROG} --url postgresql://app@db/app upgrade
  {PROG} status --wait 120               # a replica waiting for the migrator
  {PROG} downgrade -1
  {PROG} upgrade --sql base:head > schema.sql

Run '{PROG} COMMAND --help' for a command's options."""


def _shared_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command name.

    SUPPRESS keeps a subcommand's absent option from overwriting the one given
    before the command; real defaults are applied in :func:`main`.
    """
    parent = argparse.ArgumentParser(add_help=False, formatter_class=_HelpFormatter)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"database URL (default: ${ENV_VAR}, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output (current, status, history, heads, verify)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log what Alembic does; show tracebacks",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only errors"
    )
    return parent


COMMANDS: dict[str, tuple[str, str]] = {
    "upgrade": (
        "upgrade to a revision (default: head)",
        f"  {PROG} upgrade\n  {PROG} upgrade +1\n  {PROG} upgrade --sql base:head\n"
        f"  {PROG} upgrade --lock-timeout 600 --statement-lock-timeout 5   # production\n"
        f"  {PROG} upgrade --to-version 0.1.0 --backup\n"
        f"  {PROG} upgrade --sql --from-version 0.1.0 --to-version 0.2.0",
    ),
    "downgrade": (
        "downgrade to a revision (-1: one step; base needs --yes)",
        f"  {PROG} downgrade -1\n  {PROG} downgrade base --yes\n  {PROG} downgrade --sql head:-1\n"
        f"  {PROG} downgrade --to-version 0.1.0",
    ),
    "current": ("show the database's revision", f"  {PROG} current\n  {PROG} current --json"),
    "history": (
        "list the revisions this package ships; --applied: what ran on this database",
        f"  {PROG} history --json\n  {PROG} history --applied",
    ),
    "heads": ("show the newest revision(s) shipped", f"  {PROG} heads"),
    "stamp": (
        "record a revision without running migrations",
        f"  {PROG} stamp head      # a database created by create_all()",
    ),
    "status": (
        "applied and pending revisions; exit 0 at head, 1 when pending",
        f"  {PROG} status\n  {PROG} status --wait 60   # poll until at head",
    ),
    "check": (
        "compare the models with the database; exit 1 on differences",
        f"  {PROG} check",
    ),
    "verify": (
        "check applied revisions against the shipped scripts' checksums; exit 1 on a mismatch",
        f"  {PROG} verify\n  {PROG} verify --json",
    ),
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, sized as ``shutil.get_terminal_size()`` would size it.

    argparse builds a formatter for every ``add_argument`` and would import shutil
    (with zlib, bz2 and lzma: 3 ms) just to read the terminal width.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


def _terminal_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command gets its options (the others are
    bare names for the usage message): every start-up pays for building a parser."""
    shared = _shared_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[shared],
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    # prog given: argparse would otherwise build a formatter just to compute it.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, prog=PROG)
    sub: dict[str, argparse.ArgumentParser] = {}
    for name, (summary, examples) in COMMANDS.items():
        if only is not None and name != only:
            commands.add_parser(name, help=summary, add_help=False)
            continue
        sub[name] = commands.add_parser(
            name,
            parents=[shared],
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.",
            epilog=f"examples:\n{examples}\n\nexit codes: 0 success, 1 failure, 2 usage error",
            formatter_class=_HelpFormatter,
        )
    def option(names: tuple[str, ...], *args: Any, **kwargs: Any) -> None:
        for name in names:
            if name in sub:
                sub[name].add_argument(*args, **kwargs)

    migrations = ("upgrade", "downgrade")
    for name in migrations:
        option(
            (name,),
            "revision",
            nargs="?",
            metavar="REV",
            help="target revision: an id (prefix), head, base, +N, -N; with --sql, FROM:TO"
            + (" (default: head)" if name == "upgrade" else ""),
        )
    option(migrations, "--sql", action="store_true",
           help="print the SQL for the dialect of --url instead of running it")
    option(migrations, "--to-version", metavar="VERSION",
           help="target the schema mypkg VERSION shipped (instead of REV)")
    option(migrations, "--from-version", metavar="VERSION",
           help="with --sql: start from the schema mypkg VERSION shipped")
    option(migrations, "--backup", action="store_true",
           help="SQLite: first copy the database next to it (online backup API) and print the path")
    option(("upgrade",), "--ignore-checksums", action="store_true",
           help="upgrade even if an applied revision's script changed since it ran (see verify)")
    option(("stamp",), "--force", action="store_true",
           help="stamp even if the schema differs from the revision's")
    option(("history",), "--applied", action="store_true",
           help="the database's ledger: every revision applied, reverted, stamped or failed")
    option(
        ("upgrade", "downgrade", "stamp"),
        "--lock-timeout",
        type=_seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="wait this long for another migrator to finish, then fail (exit 1, "
        f"nothing changed); default {DEFAULT_LOCK_TIMEOUT:g}",
    )
    option(
        migrations,
        "--statement-lock-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="PostgreSQL: roll a revision back when one of its statements waits longer "
        "than this for a table lock, and retry it up to 3 times, so the application's "
        "queries are not stalled behind it (default: wait indefinitely)",
    )
    option(("downgrade",), "--yes", action="store_true",
           help="confirm a downgrade to base (drops every table)")
    option(("stamp",), "revision", metavar="REV", help="revision to record")
    option(("status",), "--wait", type=float, metavar="SECONDS",
           help="poll until the database is at head, fail after SECONDS")
    return parser


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
    return seconds


class _VersionAction(argparse.Action):
    """Reads the version only when --version is asked for (importlib.metadata is slow)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        from ._version import package_version

        print(f"{PROG} {package_version()}")
        parser.exit()


# --- printing ----------------------------------------------------------------


class Output:
    def __init__(self, *, as_json: bool, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet

    def line(self, text: str = "") -> None:
        if not self.quiet:
            print(text, flush=True)

    def waiting(self, text: str) -> None:
        """Progress while blocked (lock waits, retries): stderr, so stdout stays clean."""
        if not self.quiet:
            print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    def data(self, payload: Any, text: Callable[[], None]) -> None:
        if self.as_json:
            import json

            print(json.dumps(payload, indent=2))
        else:
            text()


def _short(revisions: Sequence[str]) -> str:
    return ", ".join(revisions) if revisions else "base (empty database)"


def _run_migration(args: argparse.Namespace, out: Output) -> ExitCode:
    target = _target_revision(args)
    if args.command == "upgrade" and target == "head" and not args.sql:
        at_head = _fast_status(args, upgrade=True)
        if at_head is not None:  # the deploy-time common case, without SQLAlchemy
            out.line(f"{at_head.database}: nothing to do, at {_short(at_head.current)}")
            return ExitCode.OK
    from . import api

    if args.sql:
        sys.stdout.write(api.offline_sql(args.command, target, args.url))
        return ExitCode.OK
    if args.from_version:
        raise UsageError("--from-version is for offline SQL: add --sql")

    def applied(step: api.AppliedRevision) -> None:
        arrow = "applied " if step.direction == "upgrade" else "reverted"
        out.line(f"{arrow} {step.revision}  {step.message}  ({step.seconds * 1000:.0f} ms)")

    options = {
        "on_applied": applied,
        "lock_timeout": args.lock_timeout,
        "statement_lock_timeout": args.statement_lock_timeout,
        "on_wait": out.waiting,
        "backup": args.backup,
    }
    if args.command == "upgrade":
        result = api.upgrade(args.url, target, ignore_checksums=args.ignore_checksums, **options)
    else:
        result = api.downgrade(args.url, target, confirm_base=args.yes, **options)
    if result.backup:
        out.line(f"backup: {result.backup}")
    if not result.applied:
        out.line(f"{result.database}: nothing to do, at {_short(result.after)}")
    else:
        out.line(
            f"{result.database}: {args.command}d from {_short(result.before)} "
            f"to {_short(result.after)}"
        )
    return ExitCode.OK


def _target_revision(args: argparse.Namespace) -> str:
    """REV, or the head of --to-version; with --sql, a FROM:TO range."""
    from .releases import revision_for

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


def _revision_dict(rev: Any) -> dict[str, Any]:
    return {
        "revision": rev.revision,
        "down_revisions": list(rev.down_revisions),
        "message": rev.message,
        "is_head": rev.is_head,
    }


def _fast_status(args: argparse.Namespace, *, upgrade: bool = False) -> Any:
    """The fast path's answer (see :mod:`mypkg.fastpath`), or None to take the full path."""
    from . import fastpath
    from .settings import resolve_url_string

    if args.verbose or not fastpath.enabled():
        return None
    url = resolve_url_string(args.url)
    return fastpath.nothing_to_upgrade(url) if upgrade else fastpath.status(url)


def _full_status(args: argparse.Namespace) -> Any:
    from . import api

    return api.status(args.url)


def _current(args: argparse.Namespace, out: Output) -> ExitCode:
    state = _fast_status(args) or _full_status(args)

    def text() -> None:
        if not state.current:
            out.line("base (empty database)")
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
        from . import api

        def waiting(state: api.Status) -> None:
            print(
                f"waiting up to {args.wait:g}s for {state.database} to reach head "
                f"({len(state.pending)} revision(s) pending)",
                file=sys.stderr,
                flush=True,
            )

        state = api.wait_for_head(args.url, args.wait, on_wait=None if out.quiet else waiting)
    else:
        state = _fast_status(args) or _full_status(args)

    def text() -> None:
        out.line(f"database: {state.database}")
        out.line(f"current:  {_short(state.current)}")
        out.line(f"head:     {_short(state.heads)}")
        out.line(f"applied:  {len(state.applied)} revision(s)")
        out.line(f"pending:  {len(state.pending)} revision(s)")
        for rev in state.pending:
            out.line(f"  {rev.revision}  {rev.message}")

    out.data(
        {
            "database": state.database,
            "current": list(state.current),
            "heads": list(state.heads),
            "at_head": state.at_head,
            "applied": [_revision_dict(rev) for rev in state.applied],
            "pending": [_revision_dict(rev) for rev in state.pending],
        },
        text,
    )
    return ExitCode.OK if state.at_head else ExitCode.FAILURE


def _history(args: argparse.Namespace, out: Output) -> ExitCode:
    from . import api

    if args.applied:
        return _applied_history(args, out)
    revisions = api.history()

    def text() -> None:
        for rev in revisions:
            parent = ", ".join(rev.down_revisions) or "<base>"
            head = " (head)" if rev.is_head else ""
            out.line(f"{parent} -> {rev.revision}{head}, {rev.message}")

    out.data([_revision_dict(rev) for rev in revisions], text)
    return ExitCode.OK


def _applied_history(args: argparse.Namespace, out: Output) -> ExitCode:
    from . import api

    rows = api.applied_history(args.url)

    def text() -> None:
        if not rows:
            out.line("the ledger is empty: nothing migrated by mypkg-migrate yet")
        for row in rows:
            out.line(
                f"{row.finished_at:%Y-%m-%d %H:%M:%S}Z  {row.revision}  {row.direction:<9}  "
                f"{row.outcome:<8}  {row.duration_ms:7.0f} ms  mypkg {row.package_version}"
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
    from . import api

    problems = api.verify(args.url)

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
    from . import api

    found = api.heads()
    out.data(list(found), lambda: [out.line(rev) for rev in found])
    return ExitCode.OK


def _stamp(args: argparse.Namespace, out: Output) -> ExitCode:
    from . import api

    result = api.stamp(
        args.url, args.revision, force=args.force, lock_timeout=args.lock_timeout, on_wait=out.waiting
    )
    out.line(f"{result.database}: stamped {_short(result.after)} (was {_short(result.before)})")
    return ExitCode.OK


def _check(args: argparse.Namespace, out: Output) -> ExitCode:
    from . import api

    differences = api.check(args.url)
    if not differences:
        out.line("no differences: the database matches the models")
        return ExitCode.OK
    print(f"{len(differences)} difference(s) between the models and the database:")
    for difference in differences:
        print(f"  {difference}")
    return ExitCode.FAILURE


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
}


def _command_in(argv: list[str]) -> str | None:
    """The command named in argv, if any (the value after --url is not a command)."""
    previous = ""
    for token in argv:
        if token in COMMANDS and previous != "--url":
            return token
        previous = token
    return None


def _skip_template_highlighting() -> None:
    """Keep Mako from importing Pygments when Alembic imports Mako (30-50 ms).

    Alembic imports Mako for ``alembic revision``'s templates, and Mako imports Pygments,
    when installed, only to colour the HTML page of a template error. This command renders
    no template, so Mako takes the fallback it has for machines without Pygments. Done
    here, for this process only: the library API leaves an application's imports alone.
    """
    if "mako.exceptions" not in sys.modules:
        sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mypkg-migrate``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(only=_command_in(argv)).parse_args(argv)
    for name, default in (("url", None), ("json", False), ("verbose", False), ("quiet", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.verbose:
        import logging  # only here: every start-up pays for what it imports

        logging.basicConfig(level=logging.INFO, format="%(levelname)-5s [%(name)s] %(message)s")
    out = Output(as_json=args.json, quiet=args.quiet)
    _skip_template_highlighting()
    try:
        return int(HANDLERS[args.command](args, out))
    except MigrateError as exc:
        if args.verbose:
            import logging

            logging.getLogger(__name__).exception("failed")
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
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
