"""``mypkg-migrate``'s commands that only read: status, current, history, heads, verify,
check, lint; and the fast path's answer, which a no-op ``upgrade`` takes too."""

from __future__ import annotations

import os
import sys

from ..errors import ExitCode
from ..identity import COMMAND as PROG
from ..identity import PACKAGE
from .output import Output, of_plugin, revision_dict, short

TYPE_CHECKING = False  # every start-up pays for what this module imports: not typing
if TYPE_CHECKING:
    import argparse
    from typing import Any


def fast_status(args: argparse.Namespace, *, upgrade: bool = False) -> Any:
    """The fast path's answer (see :mod:`..fast.answers`), or None to take the full path."""
    from ..database.settings import resolve_url_string
    from ..fast import answers as fastpath

    if args.verbose or not fastpath.enabled():
        return None
    url = resolve_url_string(args.url)
    return fastpath.nothing_to_upgrade(url) if upgrade else fastpath.status(url)


def fast_install(args: argparse.Namespace, target: str, on_applied: Any) -> Any:
    """An empty database at a checkpointed head, installed by the fast path
    (:mod:`..fast.install`); None: the full path runs."""
    if args.verbose or args.sql or args.backup or args.baseline or args.no_checkpoint or args.only or args.without:
        return None
    from ...naming import NAMING_CONVENTION
    from ..database.settings import busy_timeout
    from ..fast import install
    from ..history.conventions import require_models_convention

    return install.fresh_install(args.url, target, on_applied=on_applied, busy_timeout=busy_timeout(),
                                 statement_lock_timeout=args.statement_lock_timeout,
                                 check=lambda: require_models_convention(NAMING_CONVENTION))


def full_status(args: argparse.Namespace) -> Any:
    from .. import commands

    return commands.status(args.url)


def base(database: str) -> str:
    """No revision: an empty database, or (SQLite) no file at all, which a typo in the path
    looks like: say which."""
    from urllib.parse import unquote

    path = unquote(database.removeprefix("sqlite:///")) if database.startswith("sqlite:///") else ""
    if path and "?" not in path and path != ":memory:" and not os.path.exists(os.fsdecode(path.encode("utf-8"))):
        return f"base (no database: {path} does not exist; upgrade creates it)"
    return "base (empty database)"


def _background(found: Any) -> list[dict[str, Any]]:
    if not found:
        return []
    from .backfills import as_dict

    return [as_dict(queued) for queued in found]


def current(args: argparse.Namespace, out: Output) -> ExitCode:
    state = fast_status(args) or full_status(args)

    def text() -> None:
        if not state.current:
            out.line(base(state.database))
        for rev in state.current:
            found = next((r for r in state.applied if r.revision == rev), None)
            head = " (head)" if rev in state.heads else ""
            out.line(f"{rev}{head}  {found.message if found else ''}{of_plugin(found) if found else ''}")

    out.data(
        {"database": state.database, "current": list(state.current), "at_head": state.at_head},
        text,
    )
    return ExitCode.OK


def status(args: argparse.Namespace, out: Output) -> ExitCode:
    if args.wait is not None:
        from .. import commands

        def waiting(state: commands.Status) -> None:
            print(
                f"waiting up to {args.wait:g}s for {state.database} to reach head "
                f"({len(state.pending)} revision(s) pending)",
                file=sys.stderr,
                flush=True,
            )

        state = commands.wait_for_head(args.url, args.wait, on_wait=None if out.quiet or out.json_log else waiting,
                                       phase=args.phase)
    else:
        state = fast_status(args) or full_status(args)
    ready = state.ready_for(args.phase)

    def text() -> None:
        out.line(f"database: {state.database}")
        out.line(f"current:  {short(state.current) if state.current else base(state.database)}")
        out.line(f"head:     {short(state.heads)}")
        out.line(f"applied:  {len(state.applied)} revision(s)")
        post = len(state.pending_in("post"))
        apart = f": {len(state.pending) - post} pre-deploy, {post} post-deploy" if post else ""
        out.line(f"pending:  {len(state.pending)} revision(s){apart}")
        for stopped in state.interrupted:
            from ..data.progress import describe

            out.line(f"stopped:  {describe(stopped)}; {PROG} upgrade continues it")
        for queued in state.background:
            from .backfills import describe

            out.line(f"backfill: {describe(queued)}; {PROG} backfill run works on it")
        for rev in state.needs_repair:
            out.line(f"repair:   {rev} failed part way; fix the schema, then {PROG} repair {rev} --applied or --reverted")
        for rev in state.pending:
            out.line(f"  {rev.revision}  {rev.message}{of_plugin(rev)}{'  [post-deploy]' if rev.phase == 'post' else ''}")
        if args.phase == "pre" and ready and state.pending:
            out.line(f"ready:    no pre-deploy revision pending; after the rollout: {PROG} upgrade --phase post")

    out.data(
        {
            "database": state.database,
            "current": list(state.current),
            "heads": list(state.heads),
            "at_head": state.at_head,
            "phase": args.phase,
            "ready": ready,
            "applied": [revision_dict(rev) for rev in state.applied],
            "pending": [revision_dict(rev) for rev in state.pending],
            "needs_repair": list(state.needs_repair),
            "interrupted": [{**stopped._asdict(), "seconds": round(stopped.seconds, 3)}
                            for stopped in state.interrupted],
            "background": _background(state.background),
        },
        text,
    )
    return ExitCode.OK if ready else ExitCode.FAILURE


def history(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    if args.applied:
        return applied_history(args, out)
    revisions = commands.history()

    def text() -> None:
        for rev in revisions:
            parent = ", ".join(rev.down_revisions) or "<base>"
            head = " (head)" if rev.is_head else ""
            out.line(f"{parent} -> {rev.revision}{head}, {rev.message}{of_plugin(rev)}")

    out.data({"revisions": [revision_dict(rev) for rev in revisions]}, text)
    return ExitCode.OK


def applied_history(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    rows = commands.applied_history(args.url)

    def text() -> None:
        if not rows:
            out.line(f"the ledger is empty: nothing migrated by {PROG} yet")
        for row in rows:
            out.line(
                f"{row.finished_at:%Y-%m-%d %H:%M:%S}Z  {row.revision}  {row.direction:<9}  "
                f"{row.outcome:<8}  {row.duration_ms:7.0f} ms  {row.plugin or PACKAGE} {row.package_version}"
                f"  sha256 {(row.checksum or '-')[:12]}" + (f"  {row.detail}" if row.detail else "")
            )

    payload = [
        {
            **{k: getattr(row, k) for k in ("id", "revision", "direction", "checksum",
                                            "package_version", "outcome", "detail", "plugin")},
            "duration_ms": round(row.duration_ms, 1),
            "started_at": row.started_at.isoformat(),
            "finished_at": row.finished_at.isoformat(),
        }
        for row in rows
    ]
    out.data({"rows": payload}, text)
    return ExitCode.OK


def verify(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    problems = commands.verify(args.url)

    def text() -> None:
        if not problems:
            out.line("every applied revision matches the script shipped")
            return
        out.result(f"{len(problems)} problem(s):")
        for problem in problems:
            out.result(f"  {problem.revision}  {problem.kind}: {problem.detail}")

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


def heads(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    found = commands.heads()
    out.data({"heads": list(found)}, lambda: [out.line(rev) for rev in found])
    return ExitCode.OK


def check(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    differences = commands.check(args.url)

    def text() -> None:
        if not differences:
            out.line("no differences: the database matches the models")
            return
        out.result(f"{len(differences)} difference(s) between the models and the database:")
        for difference in differences:
            out.result(f"  {difference}")

    out.data({"ok": not differences, "differences": list(differences)}, text)
    return ExitCode.FAILURE if differences else ExitCode.OK


def lint(args: argparse.Namespace, out: Output) -> ExitCode:
    from pathlib import Path

    from ..checks import lint

    if args.record_release:
        from ..checks.released import record_release

        path, count = record_release(args.record_release)
        out.data({"release": args.record_release, "path": str(path), "scripts": count}, lambda: out.line(
            f"recorded the checksums of {count} script(s) of release {args.record_release} in {path}"))
        return ExitCode.OK
    findings, squawked, unchecked = lint.lint(lint.range_of(args.range), args.dialect, lint.load_settings(Path.cwd()))
    for note in unchecked if not out.as_json else ():  # a note, not a finding: the exit code is the findings'
        print(f"{PROG}: note: {note.revision} ({note.direction}) is not checkable offline: {note.reason}",
              file=sys.stderr)
    if not squawked and args.dialect == "postgresql" and not out.as_json:
        print(f"{PROG}: squawk is not installed, so only {PACKAGE}'s own rules ran: "
              "pip install squawk-cli (in a conda environment too; from a checkout: pip install '.[lint]')",
              file=sys.stderr)

    def text() -> None:
        if not findings:
            out.line("no findings")
        for found in findings:
            out.line(f"{found.revision}  {found.rule}  {found.statement}  -> {found.fix}")

    out.data({"findings": [found._asdict() for found in findings],
              "not_checkable": [{k: v for k, v in note._asdict().items() if k != "reads_database"} for note in unchecked], "squawk": squawked}, text)
    return ExitCode.FAILURE if findings else ExitCode.OK


def drift(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands

    found = commands.drift(args.url)

    def text() -> None:
        at = short(found.current) if found.current else "base"
        for line in found.differences:
            out.result(f"drift: {line}")
        verdict = f"{len(found.differences)} difference(s)" if found.drifted else "no drift"
        out.line(f"{found.database} at {at}: {verdict} from the schema {at} builds")

    out.data({"database": found.database, "current": list(found.current), "drifted": found.drifted,
              "differences": found.differences}, text)
    return ExitCode.FAILURE if found.drifted else ExitCode.OK
