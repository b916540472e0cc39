"""The command line of ``mypkg-migrate``: its options, help and examples.

Built per run for the named command only (every start-up pays for building a parser);
nothing heavy imported, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..database.settings import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_LOCK_TIMEOUT,
)
from ..identity import (
    BUSY_TIMEOUT_VAR,
    CONNECT_TIMEOUT_VAR,
    DEFAULT_EXTENSIONS_SCHEMA,
    DEFAULT_URL,
    EXTENSIONS_SCHEMA_VAR,
    LEASE_SECONDS_VAR,
    LOCK_MODE_VAR,
    LOG_FORMAT_VAR,
    MIGRATION_URL_VAR,
    PACKAGE,
)
from ..identity import COMMAND as PROG
from ..identity import DATABASE_URL_VAR as ENV_VAR
from . import types
from .summaries import COMMANDS

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = f"""\
Migrate a database to the schema this {PACKAGE} package ships.

The database is --url, else ${MIGRATION_URL_VAR} (a direct URL for migrations), else
${ENV_VAR}, else {DEFAULT_URL} (a file in the working directory). Passwords and
other secrets in URLs are never printed; prefer PGPASSWORD or ~/.pgpass to a
password in the URL.

exit codes: 0 success (status: at head), 1 failure (status: revisions pending;
check, verify, lint: findings), 2 usage error (bad option, malformed URL, unknown
revision), 130 interrupted, 143 terminated (SIGTERM)."""

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
    parent = argparse.ArgumentParser(add_help=False, formatter_class=HelpFormatter)
    group = parent.add_argument_group("global options")
    group.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"database URL (default: ${MIGRATION_URL_VAR}, else ${ENV_VAR}, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--schema",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="a tenant's schema (PostgreSQL) or database (MySQL/MariaDB) on the server of --url: "
        "scripts run there, its version table and ledger live there (also: the URL's schema=NAME)",
    )
    group.add_argument(
        "--extensions-schema",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="PostgreSQL tenants: the schema on every tenant's search path after its own, where a "
        f"tenant's CREATE EXTENSION goes ('' for none; default: ${EXTENSIONS_SCHEMA_VAR}, else "
        f"{DEFAULT_EXTENSIONS_SCHEMA})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the result as one JSON object on stdout (every command; docs/json); errors as one on stderr",
    )
    group.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help=f"stderr's lines: text, or json: every event one JSON object per line (default ${LOG_FORMAT_VAR}, "
        "else text)",
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
    group.add_argument(
        "--connect-timeout",
        type=types.positive_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help=f"give up connecting after SECONDS (default: ${CONNECT_TIMEOUT_VAR}, else "
        f"{DEFAULT_CONNECT_TIMEOUT:g}; a connect_timeout in the URL wins)",
    )
    group.add_argument(
        "--busy-timeout",
        type=types.seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="SQLite: wait this long for an application's write or a reader's transaction "
        f"to end, on every connection (default: ${BUSY_TIMEOUT_VAR}, else {DEFAULT_BUSY_TIMEOUT:g})",
    )
    group.add_argument(
        "--lock",
        choices=("auto", "advisory", "lease"),
        default=argparse.SUPPRESS,
        help="PostgreSQL's migration lock: advisory (a session's; refused through a transaction "
        "pooler), lease (a lease row checked in every revision: works through pgbouncer's transaction "
        f"pooling), auto (advisory, or the lease when a pooler shows; default: ${LOCK_MODE_VAR}, else auto)",
    )
    group.add_argument(
        "--lease",
        type=types.positive_seconds,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long a lease lasts unrenewed (a heartbeat renews it): how long a killed "
        f"migrator's lease blocks the next one (default: ${LEASE_SECONDS_VAR}, else {DEFAULT_LEASE_SECONDS:g})",
    )
    return parent


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
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


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit 2, like every other error of the command."""

    #: ``--json`` was on the command line: the error is a JSON object too (docs/json/error.schema.json).
    as_json = False
    json_log = False  #: ``--log-format json`` (or its variable): the error is a ``command.end`` event
    command: str | None = None

    def error(self, message: str) -> None:  # type: ignore[override]
        from .output import usage_error_line

        text = f"{message} (see {self.prog} --help)"
        self.exit(2, usage_error_line(text, command=self.command, as_json=self.as_json, json_log=self.json_log))


def _translate_once() -> None:
    """argparse translates each of its strings through ``gettext``, which looks for a
    catalog again on every call when there is none (CPython ships none): about 60
    lookups, 6 to 10 ms of every start. Look once, and hand argparse that translation:
    the same strings, in the same language where a catalog exists."""
    import gettext

    domain = gettext.textdomain()
    translation = gettext.translation(domain, gettext.bindtextdomain(domain), fallback=True)
    argparse._ = translation.gettext  # type: ignore[attr-defined]
    argparse.ngettext = translation.ngettext  # type: ignore[attr-defined]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command gets its options (the others are
    bare names for the usage message): every start-up pays for building a parser."""
    _translate_once()
    shared = _shared_options()
    parser = OneLineErrorParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[shared],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    # prog given: argparse would otherwise build a formatter just to compute it.
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, prog=PROG, parser_class=OneLineErrorParser
    )
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
            formatter_class=HelpFormatter,
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
    option(migrations, "--to-version", metavar="VERSION", type=types.not_blank,
           help=f"target the schema {PACKAGE} VERSION shipped (instead of REV)")
    option(migrations, "--from-version", metavar="VERSION", type=types.not_blank,
           help=f"with --sql: start from the schema {PACKAGE} VERSION shipped")
    option(migrations, "--backup", action="store_true",
           help="SQLite: first copy the database next to it (online backup API) and print the path")
    option(("upgrade",), "--baseline", metavar="REV",
           help="a database with tables but no version table: check that its schema is REV's, "
           "record REV, then upgrade (refused otherwise, as Flyway's baselineOnMigrate)")
    option(("upgrade",), "--only", metavar="NAME", type=types.not_blank,
           help=f"only this installed plugin's revisions (and what they build on); {PACKAGE}: only its own")
    option(("upgrade",), "--without", metavar="NAME", action="append", default=[], type=types.not_blank,
           help="every installed plugin but this one (repeatable)")
    option(("upgrade",), "--plan", metavar="FILE", type=types.not_blank,
           help="run exactly the revisions of a reviewed plan (plan --out FILE); refused, nothing run, "
           "when the database's revision or a script differs from what was reviewed")
    option(("upgrade",), "--no-checkpoint", action="store_true",
           help="an empty database replays every revision instead of installing a checkpoint")
    option(("checkpoint",), "revision", metavar="REV", nargs="?", help="the revision whose schema the checkpoint holds")
    option(("checkpoint",), "--prove", action="store_true",
           help="replay each checkpoint's history, install it into scratch places, exit 1 on any difference (CI)")
    option(("checkpoint",), "--replay-on", metavar="URL", action="append", default=[], type=types.not_blank,
           help="also replay on this PostgreSQL or MySQL/MariaDB server (in a scratch schema or database, "
           "dropped afterwards) for that dialect's form; repeat per dialect (SQLite's is always written)")
    option(("checkpoint",), "--retire", action="store_true",
           help="remove the scripts before REV's checkpoint from the package (after a release shipped it)")
    option(("upgrade",), "--ignore-checksums", action="store_true",
           help="upgrade even if an applied revision's script changed since it ran (see verify)")
    option(("stamp",), "--force", action="store_true",
           help="stamp even if the schema differs from the revision's")
    option(("repair",), "revision", metavar="REV", nargs="?",
           help="the revision that failed part way (with --checksums: only this one)")
    option(("lint",), "range", nargs="?", default="base:heads", metavar="FROM:TO",
           help="the revisions to lint (default: all, base:heads)")
    option(("lint",), "--record-release", metavar="VERSION",
           help="record the checksums of the scripts release VERSION ships (alembic/released.json), "
           "so lint notices when one changes later")
    option(("lint",), "--dialect", default="postgresql", choices=("postgresql", "mysql", "sqlite"),
           help="render the SQL for this database (default: postgresql; squawk lints PostgreSQL only)")
    for name, module in (("fleet", "fleet"), ("roundtrip", "roundtrip"), ("backfill", "backfills"), ("plan", "plan")):
        if name in sub:  # their own modules: their options and their printing
            __import__(f"{__package__}.{module}", fromlist=["add_options"]).add_options(sub[name])
    if "repair" in sub:
        way = sub["repair"].add_mutually_exclusive_group(required=True)
        way.add_argument("--applied", action="store_true", help="it was completed by hand: record it as applied")
        way.add_argument("--reverted", action="store_true", help="what it ran was undone by hand")
        way.add_argument("--checksums", action="store_true",
                         help="accept the shipped scripts as they are now where an applied one changed "
                         "(recorded in the ledger: who, when, the old checksum), as Flyway's repair")
        sub["repair"].add_argument("--force", action="store_true",
                                   help="record it even if the schema does not match the decision")
    option(("history",), "--applied", action="store_true",
           help="the database's ledger: every revision applied, reverted, stamped or failed")
    option(
        ("upgrade", "downgrade", "stamp", "repair"),
        "--lock-timeout",
        type=types.seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="wait this long for another migrator to finish, then fail (exit 1, "
        f"nothing changed); default {DEFAULT_LOCK_TIMEOUT:g}",
    )
    option(
        migrations,
        "--statement-lock-timeout",
        type=types.lock_seconds,
        metavar="SECONDS",
        help="PostgreSQL: roll a revision back when one of its statements waits longer "
        "than this for a table lock, and retry it up to 3 times, so the application's "
        "queries are not stalled behind it (default: wait indefinitely)",
    )
    option(("downgrade",), "--yes", action="store_true",
           help="confirm a downgrade to base (drops every table)")
    option(("stamp",), "revision", metavar="REV", help="revision to record")
    option(("status",), "--wait", type=types.seconds, metavar="SECONDS",
           help="poll until the database is at head (with --phase pre: past every pre-deploy revision), "
           "fail after SECONDS")
    option(("upgrade", "status"), "--phase", choices=("pre", "post"),
           help="a rolling deploy's phase (docs/deploying.md): pre, before the new release starts (only "
           "pre-deploy revisions; status: exit 0 once none is pending), post, once the old release is gone (the rest)")
    return parser


class _VersionAction(argparse.Action):
    """Reads the version only when --version is asked for (importlib.metadata is slow)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        from ..version import package_version

        print(f"{PROG} {package_version()}")
        parser.exit()


# --- printing ----------------------------------------------------------------
