"""A revision's deploy phase: ``pre`` (expand, the default) or ``post`` (contract).

A rolling deploy runs two releases at once for a while. What the old release still reads
(a column it selects, a table it writes) may only go once no node runs it: such revisions
are post-deploy, applied by ``upgrade --phase post`` after the rollout; everything additive
is pre-deploy, applied by ``upgrade --phase pre`` before it (GitLab's ``db/post_migrate``,
Neutron's ``expand``/``contract`` branches).

A script declares it (``phase = "post"``); a history that already keeps ``expand`` and
``contract`` branches needs nothing: every revision descending from the branch labelled
``contract`` is post-deploy (Alembic gives a branch's label to every descendant, as here).
Read from the manifest: no script is imported.
"""

from __future__ import annotations

from ..errors import MigrateError
from ..identity import COMMAND

TYPE_CHECKING = False  # the fast path imports this module: not typing
if TYPE_CHECKING:
    from .manifest import Manifest

PRE, POST = "pre", "post"
PHASES = (PRE, POST)
#: Branch labels that say the phase (OpenStack Neutron's and Keystone's names).
_LABELS = {"expand": PRE, "contract": POST}


def of_every(shipped: Manifest) -> dict[str, str]:
    """Each revision's phase, by id.

    :raises MigrateError: a script declaring a phase that is neither ``pre`` nor ``post``.
    """
    known = getattr(shipped, "_phases", None)
    if known is not None:  # once per graph: every revision a run starts asks
        return known
    found: dict[str, str] = {}
    for rev in shipped.revisions:
        if rev.phase and rev.phase not in PHASES:
            raise MigrateError(f"{rev.filename}: phase = {rev.phase!r}: a revision's phase is 'pre' "
                               "(the default: runs while the old release still runs) or 'post' "
                               "(after no node runs it)")
    contract = _on_the_contract_branch(shipped)
    for rev in shipped.revisions:
        found[rev.revision] = rev.phase or (POST if rev.revision in contract else PRE)
    shipped._phases = found  # type: ignore[attr-defined]
    return found


def _on_the_contract_branch(shipped: Manifest) -> set[str]:
    """Revisions labelled ``contract`` and every descendant of one (through
    ``down_revision``; a ``depends_on`` is not descent, as in Alembic's labels)."""
    children: dict[str, list[str]] = {}
    for rev in shipped.revisions:
        for parent in rev.down_revisions:
            children.setdefault(parent, []).append(rev.revision)
    stack = [rev.revision for rev in shipped.revisions
             if any(_LABELS.get(label) == POST for label in rev.branch_labels)]
    found: set[str] = set()
    while stack:
        revision = stack.pop()
        if revision not in found:
            found.add(revision)
            stack.extend(children.get(revision, ()))
    return found


def pre_deploy_destination(shipped: Manifest, current: tuple[str, ...]) -> tuple[str, ...]:
    """Where ``upgrade --phase pre`` goes from ``current``: the newest pending pre-deploy
    revisions (``current`` itself when none is pending). An empty database takes every
    revision (no release runs on it yet): the caller does not ask.

    :raises MigrateError: a pending pre-deploy revision reachable only through a pending
        post-deploy one, before anything runs: naming both, and the ways out.
    """
    phase = of_every(shipped)
    applied = set(shipped.ancestors(current))
    chosen = [rev.revision for rev in shipped.revisions if rev.revision not in applied and phase[rev.revision] == PRE]
    below_another: set[str] = set()
    for revision in chosen:
        needed = [rev for rev in shipped.ancestors((revision,)) if rev != revision and rev not in applied]
        blocking = next((rev for rev in reversed(needed) if phase[rev] == POST), None)
        if blocking is not None:
            parents = ", ".join(shipped.by_id[blocking].down_revisions) or "base"
            raise MigrateError(
                f"pre-deploy revision {revision} comes after post-deploy revision {blocking}, still pending: "
                f"the pre phase cannot apply it without {blocking}, which the running release may still need; "
                f"nothing was changed. Re-parent {revision} (its down_revision) onto {parents}, {blocking}'s "
                f"parent, so that it no longer needs it; or, once no node runs the old release, "
                f"{COMMAND} upgrade --phase post")
        below_another.update(needed)
    return tuple(rev for rev in chosen if rev not in below_another) or tuple(current)
