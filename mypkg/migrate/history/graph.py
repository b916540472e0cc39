"""Questions about the shipped revision graph, answered by Alembic's ScriptDirectory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import MigrateError, UsageError
from ..identity import COMMAND, PACKAGE
from ..results import RevisionInfo
from . import scripts

if TYPE_CHECKING:
    from alembic.script import Script


#: Targets Alembic resolves itself, against the database.
SYMBOLIC = ("head", "heads", "base")


def script(revision: str) -> Script | None:
    """The shipped script of ``revision``; None when the package does not ship it."""
    from alembic.util import CommandError

    if not revision.strip():  # a blank version row (a hand edit): Alembic asserts on it
        return None
    try:
        return scripts.script_directory().get_revision(revision)
    except CommandError:
        return None


def describe(revision: str | None) -> str:
    """``id (message)`` for messages; ``base (empty)`` for no revision."""
    if revision is None:
        return "base (empty)"
    found = script(revision)
    return f"{revision} ({found.doc})" if found is not None else revision


def require_known(current: Sequence[str], where: str,
                  plugins_of: Callable[[list[str]], dict[str, str]] | None = None) -> None:
    """:raises MigrateError: the database is at a revision this package does not ship
    (``plugins_of`` tells, from the ledger, which of those a plugin shipped: one that is
    no longer installed, whose tables remain)."""
    from ..version import package_version

    if any(not rev.strip() for rev in current):
        raise MigrateError(
            f"the version table of {where} holds an empty revision id (written by hand?): say "
            f"which revision its schema is: {COMMAND} stamp REV (the schema is checked first)"
        )
    from .manifest import load

    # Read from the manifest, importing no script: a history whose oldest scripts no longer
    # import (kept behind a checkpoint) still knows where its database is.
    shipped = load().by_id
    unknown = [rev for rev in current if rev not in shipped and script(rev) is None]  # a prefix: Alembic's way
    from .checkpoints import retired

    gone = retired() if unknown else {}  # read only when needed: a checkpoint file can be large
    for rev in unknown:
        if rev in gone:
            replaced = gone[rev]
            release = replaced.last_release or "the last release before the checkpoint"
            raise MigrateError(
                f"{where} is at revision {rev}, retired from {PACKAGE} {package_version()} in favour of "
                f"checkpoint {replaced.revision}: upgrade it first with {PACKAGE} {release} (the last "
                f"release that ships {rev}), then with this one"
            )
    orphans = plugins_of(unknown) if unknown and plugins_of is not None else {}
    for rev in unknown:
        if rev in orphans:
            name = orphans[rev]
            raise MigrateError(
                f"{where} holds the tables of plugin {name} (at its revision {rev}), which is not installed: "
                f"reinstall it to migrate them; to remove them, reinstall it, run {COMMAND} downgrade "
                f"{name}@base --yes, then uninstall it"
            )
    if unknown:
        raise MigrateError(
            f"{where} is at revision {', '.join(unknown)}, which {PACKAGE} "
            f"{package_version()} does not ship: it was migrated by a newer {PACKAGE}; "
            "install that version (or newer) to migrate or downgrade it"
        )


def require_revision(revision: str) -> None:
    """Fail as a usage error on a revision the package does not have.

    Relative (``-1``, ``+2``, ``head-1``) and symbolic (``head``, ``base``, ``heads``)
    revisions are left to Alembic, which resolves them against the database.
    """
    if revision in SYMBOLIC or is_relative(revision):
        return
    label, at, rest = revision.partition("@")
    if at and (rest in SYMBOLIC or is_relative(rest) or rest.lstrip("+-").isdigit()):
        from .manifest import load

        if label not in load().labels:
            raise UsageError(f"unknown branch {label!r} in {revision!r}: no revision carries that branch label "
                             f"(installed plugins: {', '.join(p.name for p in load().plugins) or 'none'})")
        return
    from .manifest import load

    if revision in load().by_id:  # a whole id the manifest names: known without importing a script
        return
    from alembic.util import CommandError

    try:
        found = scripts.script_directory().get_revisions(revision)
    except CommandError as exc:
        # Alembic says "Can't locate" for a prefix of several revisions, too (of any length:
        # it resolves "13" when one revision starts so).
        candidates = sorted(
            script.revision for script in scripts.script_directory().walk_revisions()
            if script.revision.startswith(revision)
        )
        if len(candidates) > 1:
            raise UsageError(
                f"ambiguous revision {revision!r}: it starts {', '.join(candidates)}; give more characters"
            ) from None
        raise UsageError(f"unknown revision {revision!r}: {exc}") from None
    if not found:
        raise UsageError(f"unknown revision {revision!r}")


def planned(current: Sequence[str], destination: str, direction: str, *, strict: bool = False) -> list[Script]:
    """The revisions Alembic is about to run, in order; used to name a failing one.

    With ``strict``, a target that cannot mean anything from ``current`` is a usage error
    (a relative step the wrong way or past the end, a destination behind an upgrade).

    :raises UsageError: with ``strict`` only.
    """
    from alembic.util import CommandError

    if strict and isinstance(destination, str):  # a tuple: the pre phase's revisions, absolute
        _require_direction(destination, direction)
        if direction == "upgrade" and current:
            _require_not_below(current, destination)
    directory = scripts.script_directory()
    try:
        if direction == "upgrade":
            steps = directory._upgrade_revs(destination, tuple(current))
        else:
            steps = directory._downgrade_revs(destination, tuple(current))
    except CommandError as exc:
        if strict:
            at = ", ".join(current) or "base"
            raise UsageError(f"cannot {direction} to {destination} from {at}: {exc}") from None
        return []
    except Exception as exc:  # noqa: BLE001 - Alembic asserts on some relative targets (head+1)
        lacking = lacking_function(exc)
        if lacking is not None:  # the history's own defect, whatever the target: said as such
            said = (getattr(script(lacking), "doc", "") or "").strip().splitlines()
            raise MigrateError(f"revision {lacking} ({said[0] if said else 'no message'}) defines no "
                               f"{direction}(): it cannot be {'applied' if direction == 'upgrade' else 'reverted'}; "
                               f"nothing was changed") from None
        if strict:
            at = ", ".join(current) or "base"
            raise UsageError(f"cannot {direction} to {destination} from {at}: no revision is there") from None
        return []
    return [step.revision for step in steps]


def lacking_function(exc: BaseException) -> str | None:
    """The revision whose script defines no ``upgrade`` or ``downgrade`` (gnocchi's head has
    no downgrade), when that is what ``exc`` says: Alembic takes the function as it plans
    the steps, so the failure names the script's module alone."""
    import re

    missing = re.fullmatch(r"module '([^']+)' has no attribute '(?:upgrade|downgrade)'", str(exc))
    if not isinstance(exc, AttributeError) or missing is None:
        return None
    return next((info.revision for info in history()
                 if getattr(getattr(script(info.revision), "module", None), "__name__", None)
                 == missing.group(1)), None)


def _require_direction(destination: str, direction: str) -> None:
    import re

    step = re.fullmatch(r"([+-])(\d+)", destination)
    if step is None:
        return
    sign, count = step.groups()
    if direction == "upgrade" and sign == "-":
        raise UsageError(f"upgrade {destination} would go back {count} revision(s): use downgrade {destination}")
    if direction == "downgrade" and sign == "+":
        raise UsageError(f"downgrade {destination} would go forward {count} revision(s): use upgrade {destination}")


def _require_not_below(current: Sequence[str], destination: str) -> None:
    """``upgrade base`` (or an older revision) on a database above it would do nothing and
    say so, exit 0: the user meant a downgrade.

    :raises UsageError: ``destination`` is below every current revision it is related to.
    """
    if destination in ("head", "heads") or is_relative(destination) or "@" in destination:
        return
    if destination == "base":
        raise UsageError(f"upgrade base: the database is at {', '.join(current)}, above base; "
                         "to go back, use downgrade base")
    found = script(destination)
    if found is None or found.revision in current:
        return
    applied = ancestors(current)
    if found.revision in applied:
        raise UsageError(f"upgrade {destination}: the database is at {', '.join(current)}, past {found.revision}; "
                         f"to go back, use downgrade {destination}")


def absolute(plan: Sequence[Script], direction: str, revision: str) -> str:
    """The revision a relative target (``-1``, ``+2``) means now, so a retry after some
    revisions completed does not go further than asked. Other targets stay as given
    (``heads`` must stay every head)."""
    if not plan or not is_relative(revision):
        return revision
    last = plan[-1]
    if direction == "upgrade":
        return last.revision
    down = last.down_revision
    if down is None:
        return "base"
    return down if isinstance(down, str) else revision


def is_relative(revision: str) -> bool:
    """``-1``, ``+2``, ``head-1``, ``base+2``, ``abc123+1``: counted from somewhere."""
    import re

    return isinstance(revision, str) and re.fullmatch(r"(?:\w+)?[+-]\d+", revision) is not None


def as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def heads() -> tuple[str, ...]:
    return tuple(scripts.script_directory().get_heads())


def history() -> list[RevisionInfo]:
    """Every shipped revision, oldest first."""
    from .manifest import load

    from .phases import of_every

    shipped = load()
    owner, phase = shipped.owner, of_every(shipped)
    revisions = list(scripts.script_directory().walk_revisions())
    revisions.reverse()
    return [
        RevisionInfo(
            revision=rev.revision,
            down_revisions=as_tuple(rev.down_revision),
            message=rev.doc,
            is_head=rev.is_head,
            plugin=owner.get(rev.revision),
            phase=phase.get(rev.revision, "pre"),
        )
        for rev in revisions
    ]


def ancestors(current: Sequence[str]) -> set[str]:
    """Every revision applied when the database is at ``current``."""
    if not current:
        return set()
    return {rev.revision for rev in scripts.script_directory().iterate_revisions(current, "base")}
