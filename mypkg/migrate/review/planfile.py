"""The reviewed plan as a file: ``plan --out FILE`` writes it, ``upgrade --plan FILE`` applies
exactly it, or nothing (docs/reviewing.md).

A plan is made on a staging copy and applied to production: the database is matched by
what it is, not by its address. Refused, before anything runs: a database of another kind,
a script whose checksum differs from the one reviewed, revisions other than the reviewed
ones pending; and, checked under the migration lock (another migrator may have moved it
meanwhile), a database at another revision than the one planned from. A database already
where the plan leads has nothing to run: that is no refusal (a deploy run twice, a fleet
run again after a failure).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MigrateError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..database.target import Database
    from ..results import Plan

#: The plan's shape (docs/json/plan.schema.json): the ``format`` of every ``--json``.
FORMAT = 1


def as_dict(plan: Plan) -> dict[str, Any]:
    """The plan as ``plan --json`` prints it and ``plan --out`` saves it."""
    return {
        "database": plan.database, "dialect": plan.dialect, "current": list(plan.current),
        "revision": plan.destination, "phase": plan.phase, "verdict": plan.verdict, "notes": list(plan.notes),
        "revisions": [{
            **{key: value for key, value in rev._asdict().items() if key not in ("statements", "tables", "rewrites",
                                                                                    "created")},
            "rewrites": list(rev.rewrites), "created": list(rev.created),
            "tables": {name: size._asdict() for name, size in rev.tables.items()},
            "statements": [{**s._asdict(), "rewrites": list(s.rewrites)} for s in rev.statements],
        } for rev in plan.revisions],
    }


def save(plan: Plan, path: str | os.PathLike[str]) -> Path:
    """Write the plan, readable by its owner alone (its statements may carry a data
    migration's values), replacing the file whole or not at all."""
    payload = {"format": FORMAT, "command": "plan", **as_dict(plan)}
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)  # mode 0600
    except OSError as exc:
        raise UsageError(f"cannot write the plan to {path}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out, indent=2)
            out.write("\n")
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise UsageError(f"cannot write the plan to {path}: {exc.strerror}") from None
    return target


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A plan file, checked for the keys ``upgrade --plan`` needs.

    :raises UsageError: unreadable, not JSON, not a plan.
    """
    try:
        payload = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read the plan {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{path} is not a plan: not JSON (write one with: plan --out {path})") from None
    if not isinstance(payload, dict) or payload.get("command") != "plan" or not isinstance(payload.get("revisions"), list):
        raise UsageError(f"{path} is not a plan (write one with: plan --out {path})")
    if payload.get("format") != FORMAT:
        raise UsageError(f"{path} is a plan of format {payload.get('format')!r}; this release reads format {FORMAT}")
    return payload


def prepare(payload: dict[str, Any], db: Database, path: str, revision: str = "head",
            choosing: object = None) -> tuple[str, str | None, Callable[..., None]]:
    """The revision the plan upgrades to, its deploy phase, and the check the runner makes
    under the migration lock (the database's revision and its pending revisions as reviewed).
    ``revision``, ``choosing`` (a baseline, a phase, plugins): what the caller asked for
    besides the plan, which chooses the revisions itself.

    :raises UsageError: the plan given with another choice of revisions.
    :raises MigrateError: a database of another kind, a script changed since the review
        (nothing has run).
    """
    from ..history import graph
    from ..runtime.integrity import file_checksum

    if revision != "head" or choosing:
        raise UsageError("--plan runs the revisions the plan reviewed: give no revision, --to-version, --phase, "
                         "--only, --without or --baseline with it")

    kind = "mysql" if db.is_mysql else db.backend
    if payload.get("dialect") != kind:
        raise MigrateError(f"the plan {path} was made on {payload.get('dialect')}, not {kind}; nothing run")
    reviewed = [rev.get("revision") for rev in payload["revisions"]]
    for rev in payload["revisions"]:
        script = graph.script(str(rev.get("revision")))
        if script is None:
            raise MigrateError(f"the plan {path} reviewed {rev.get('revision')}, which is not shipped; nothing run")
        if file_checksum(script.path) != rev.get("checksum"):
            raise MigrateError(f"the script of {script.revision} changed since the plan {path} was made "
                               "(its checksum differs); nothing run: make and review a new plan")
    planned_from = tuple(sorted(payload.get("current") or ()))

    def as_reviewed(before: Sequence[str], pending: Sequence[Any]) -> None:
        if not pending:  # there already (a deploy run again): nothing runs, nothing unreviewed
            return
        if tuple(sorted(before)) != planned_from:
            raise MigrateError(f"the plan {path} was made at {_at(planned_from)}; {db.masked} is at {_at(before)} "
                               "(another migrator moved it); nothing run: make and review a new plan")
        now = [script.revision for script in pending]
        if now != reviewed:
            raise MigrateError(f"{db.masked} would run {', '.join(now) or 'nothing'}; the plan {path} reviewed "
                               f"{', '.join(reviewed) or 'nothing'}; nothing run: make and review a new plan")

    phase = payload.get("phase")
    return str(payload.get("revision") or "head"), phase if phase in ("pre", "post") else None, as_reviewed


def _at(revisions: Sequence[str]) -> str:
    return ", ".join(sorted(revisions)) or "base"
