"""The package's history and each installed plugin's as branches one can name.

``upgrade --only NAME`` / ``--without NAME`` choose branches by plugin name (the package's
own name means its own revisions); ``downgrade NAME@base`` removes one plugin's tables and
is refused while another plugin's applied revisions build on them. Answered from the
manifest (:mod:`.manifest`), whose ``owner`` says which plugin ships which revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import MigrateError, UsageError
from ..identity import COMMAND, PACKAGE
from .manifest import Manifest, load

if TYPE_CHECKING:
    from alembic.script import Script

__all__ = ["refuse_ambiguous_step", "refuse_dependents", "targets"]


def _require_names(shipped: Manifest, names: Sequence[str], option: str) -> None:
    known = [plugin.name for plugin in shipped.plugins]
    for name in names:
        if name != PACKAGE and name not in known:
            raise UsageError(f"{option} {name}: no installed plugin is named so "
                             f"(installed: {', '.join(known) or 'none'}; {PACKAGE} itself: {PACKAGE})")


def needs(shipped: Manifest, plugin: str) -> set[str]:
    """The plugins (and the package, as its own name) whose revisions ``plugin``'s build on."""
    own = [rev for rev, name in shipped.owner.items() if name == plugin]
    return {shipped.owner.get(rev, PACKAGE) for rev in shipped.ancestors(tuple(own))} - {plugin}


def targets(only: str | None, without: Sequence[str]) -> list[str]:
    """What ``upgrade`` runs to, one after the other: the package's head(s) by id and
    each chosen plugin's ``NAME@head``.

    :raises UsageError: a name no installed plugin has; leaving out the package, or a
        plugin another chosen one builds on.
    """
    shipped = load()
    _require_names(shipped, [only] if only else without, "--only" if only else "--without")
    if only == PACKAGE:
        return list(shipped.core_heads())
    if only:
        return [f"{only}@head"]
    if PACKAGE in without:
        raise UsageError(f"--without {PACKAGE}: every plugin builds on {PACKAGE}'s own revisions; use --only NAME")
    chosen = [plugin.name for plugin in shipped.plugins if plugin.name not in without]
    for name in chosen:
        left_out = sorted(needs(shipped, name) & set(without))
        if left_out:
            raise UsageError(f"--without {left_out[0]}: plugin {name} builds on it; leave out {name} too (--without {name})")
    return [*shipped.core_heads(), *(f"{name}@head" for name in chosen)]


def refuse_ambiguous_step(current: Sequence[str], revision: str) -> None:
    """``downgrade -1`` on a database at several heads (the package's and its plugins'):
    Alembic only warns, then takes every branch down to base. Refused, naming the branches.

    :raises UsageError: ``revision`` is a bare relative step and ``current`` has several heads.
    """
    if len(current) < 2 or not revision.startswith("-") or not revision[1:].isdigit():
        return
    shipped = load()
    named = sorted({shipped.owner[rev] for rev in current if rev in shipped.owner})
    branches = f"NAME@{revision} (NAME: {', '.join(named)}), or " if named else ""
    raise UsageError(f"downgrade {revision} is ambiguous at {len(current)} heads ({', '.join(current)}); "
                     f"nothing was run: say which, {branches}a revision to go down to")


def refuse_dependents(plan: Sequence[Script], revision: str) -> None:
    """``downgrade NAME@...`` removes only NAME's revisions: refused, before anything runs,
    when Alembic would also take back revisions of another plugin (or of the package)
    that build on them.

    :raises MigrateError: naming the plugin to downgrade first.
    """
    name, at, _ = revision.partition("@")
    shipped = load()
    if not at or shipped.plugin(name) is None:
        return
    others = [step.revision for step in plan if shipped.owner.get(step.revision, PACKAGE) != name]
    if others:
        other = shipped.owner.get(others[0], PACKAGE)
        first = f"{COMMAND} downgrade {other}@base --yes" if other != PACKAGE else f"{PACKAGE}'s revisions after it down"
        raise MigrateError(f"{other} builds on plugin {name} ({others[0]} is applied here), so {name}'s tables "
                           f"cannot go first; nothing was run: take {first} first")


def require_phase(phase: str | None, revision: str, chosen: object) -> None:
    """``--phase`` chooses the revisions itself: no revision, no ``--only``/``--without``
    beside it.

    :raises UsageError: another phase than pre or post, or a choice beside it.
    """
    from .phases import PHASES

    if phase is None:
        return
    if phase not in PHASES:
        raise UsageError(f"--phase must be pre or post, not {phase!r}")
    if revision not in ("head", "heads") or chosen:
        given = "--only/--without" if chosen else repr(revision)
        raise UsageError(f"--phase chooses the revisions to run: give no revision and no --only/--without ({given} given)")
