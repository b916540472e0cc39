"""``mypkg-migrate plan [REV]``: options and printing (text, ``--json``, ``--markdown`` for a
pull request's comment); the work is :mod:`..review.planner`'s (docs/reviewing.md)."""

from __future__ import annotations

import sys

from ..errors import ExitCode, UsageError
from ..identity import COMMAND as PROG
from .output import Output, short

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_options(parser: argparse.ArgumentParser) -> None:
    from ..database.settings import DEFAULT_LOCK_TIMEOUT
    from . import types

    parser.add_argument("revision", nargs="?", default="head", metavar="REV",
                        help="the revision to plan the upgrade to (default: head, every head if several)")
    parser.add_argument("--markdown", action="store_true", help="the plan as Markdown, for a pull request's comment")
    parser.add_argument("--phase", choices=("pre", "post"), default=None,
                        help="a rolling deploy's phase (docs/deploying.md): pre, what upgrade --phase pre would run; "
                        "post, the rest; upgrade --plan then runs that phase")
    parser.add_argument("--out", metavar="FILE", type=types.not_blank,
                        help="also save the plan (JSON, readable by you alone) for: upgrade --plan FILE")
    parser.add_argument("--fail-on", choices=("brief", "blocking", "fails"), default=None, metavar="VERDICT",
                        help="exit 1 when a revision's verdict is this or worse (brief, blocking, fails): a CI gate; "
                        "by default the plan is for reading and exits 0")
    parser.add_argument("--lock-timeout", type=types.seconds, default=DEFAULT_LOCK_TIMEOUT, metavar="SECONDS",
                        help="wait this long for a lock (the scratch copy's, a table's size), then fail or leave "
                        f"that size unknown; default {DEFAULT_LOCK_TIMEOUT:g}")


def plan(args: argparse.Namespace, out: Output) -> ExitCode:
    from .. import commands
    from ..review import planfile
    from ..review.verdict import size_text

    if args.markdown and args.json:
        raise UsageError("--markdown and --json each print the plan: give one")
    found = commands.plan(args.url, args.revision, lock_timeout=args.lock_timeout, phase=args.phase)
    if args.out:
        saved = planfile.save(found, args.out)
        if not args.quiet:
            print(f"{PROG}: plan saved to {saved}; apply exactly it with: {PROG} upgrade --plan {saved}",
                  file=sys.stderr, flush=True)
    payload = planfile.as_dict(found)
    from ..results import VERDICTS

    gated = args.fail_on is not None and VERDICTS.index(found.verdict) >= VERDICTS.index(args.fail_on)
    code = ExitCode.FAILURE if gated else ExitCode.OK
    if args.markdown:
        out.result(markdown(payload, size_text))
        return code

    def text() -> None:
        for rev in found.revisions:
            out.line(f"{rev.revision}  {rev.message}  [{rev.phase}]")
            out.result(f"  verdict: {rev.verdict}: {rev.why}")
            for statement in rev.statements:
                out.line(f"  {_shortened(statement.sql)}")
                said = [f"{t} {m}" for t, m in statement.locks.items()]
                said += [f"rewrites {t}" for t in statement.rewrites]
                if said:
                    out.line(f"      {'; '.join(said)}")
            for finding in rev.lint:
                out.line(f"  lint: {finding['rule']}: {finding['statement']} -> {finding['fix']}")
        for note in found.notes:
            out.line(f"note: {note}")
        count = f"{len(found.revisions)} revision(s) pending" if found.revisions else "nothing pending"
        phase = f" (--phase {found.phase})" if found.phase else ""
        out.result(f"{found.database} at {short(found.current)}, to {found.destination}{phase}: {count}; "
                   f"verdict: {found.verdict}")

    out.data(payload, text)
    return code


def _shortened(sql: str, longest: int = 160) -> str:
    return sql if len(sql) <= longest else sql[:longest - 3] + "..."


def _cell(text: str) -> str:
    """Text in a Markdown table cell: its pipes escaped, its lines joined."""
    return " ".join(text.split()).replace("|", "\\|")


def markdown(plan: dict[str, Any], size_text: Any) -> str:
    """The plan as a pull request's comment: a table of verdicts, each revision's statements folded."""
    from ..results import TableSize

    at = ", ".join(f"`{rev}`" for rev in plan["current"]) or "an empty database"
    lines = [f"### Migration plan: {len(plan['revisions'])} revision(s), verdict **{plan['verdict']}**", "",
             f"`{_cell(plan['database'])}` ({plan['dialect']}) at {at}, to `{plan['revision']}`.", ""]
    if plan["revisions"]:
        lines += ["| Revision | Verdict | Locks held to commit | Rewrites | Tables |", "|---|---|---|---|---|"]
        for rev in plan["revisions"]:
            locks = ", ".join(f"{t}: {m}" for t, m in rev["locks"].items()) or "none"
            tables = ", ".join(f"{t}: {size_text(TableSize(**size))}" for t, size in rev["tables"].items()) or "none"
            lines.append(f"| `{rev['revision']}` {_cell(rev['message'])} | **{rev['verdict']}** | {_cell(locks)} | "
                         f"{_cell(', '.join(rev['rewrites']) or 'none')} | {_cell(tables)} |")
        lines.append("")
    for rev in plan["revisions"]:
        lines += ["<details>", f"<summary><code>{rev['revision']}</code> {_cell(rev['message'])}: "
                  f"{rev['verdict']}</summary>", "", f"{rev['verdict']}: {rev['why']}", ""]
        if rev["statements"]:
            lines += ["```sql", *(f"{s['sql']};" for s in rev["statements"]), "```", ""]
        lines += [f"- lint `{f['rule']}`: `{_cell(f['statement'])}`: {f['fix']}" for f in rev["lint"]]
        lines += ["", "</details>", ""] if rev["lint"] else ["</details>", ""]
    lines += [f"> {note}" for note in plan["notes"]]
    return "\n".join(lines).rstrip("\n")
