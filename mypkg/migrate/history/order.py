"""Alembic's history order, without Alembic: ``ScriptDirectory.walk_revisions()`` replayed
on the manifest, so the fast path lists revisions exactly as the full path does.

A port of ``RevisionMap._topological_sort`` (alembic/script/revision.py) for the walk
from all heads to base: the real heads (no child, no dependant) are taken in load order; a head is emitted only when no
other pending head needs it, then replaced by its parents. A property test compares it
with Alembic's on random graphs with merges, branches, labels and dependencies.

Standard library only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .manifest import Manifest


def _dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _normalized_dependencies(shipped: Manifest) -> dict[str, tuple[str, ...]] | None:
    """Each revision's dependencies that no ancestor (through down_revision) already
    depends on, as Alembic normalises them; None when a revision keeps several, which
    Alembic holds in a set (its order changes from one process to the next)."""
    normalized: dict[str, tuple[str, ...]] = {}
    for rev in shipped.revisions:
        deps = set(shipped.dependencies(rev.revision))
        if deps:
            stack, seen = list(rev.down_revisions), set()
            while stack:
                ancestor = stack.pop()
                if ancestor in seen or ancestor not in shipped.by_id:
                    continue
                seen.add(ancestor)
                deps.difference_update(shipped.dependencies(ancestor))
                stack.extend(shipped.by_id[ancestor].down_revisions)
        if len(deps) > 1:
            return None
        normalized[rev.revision] = tuple(deps)
    return normalized


def history_order(shipped: Manifest) -> list[str] | None:
    """Revision ids oldest first, as Alembic's ``history`` lists them; None if unsure."""
    if shipped.problems():
        return None
    normalized = _normalized_dependencies(shipped)
    if normalized is None:
        return None
    down = {
        rev.revision: _dedupe(rev.down_revisions + normalized[rev.revision]) for rev in shipped.revisions
    }

    def ancestors(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            rev = stack.pop()
            if rev not in seen:
                seen.add(rev)
                stack.extend(down[rev])
        return seen

    todo = set(shipped.by_id)
    position = {rev.revision: index for index, rev in enumerate(shipped.revisions)}
    # Alembic walks from its "real" heads: revisions nothing names as a parent or a dependency.
    needed = {parent for rev in shipped.revisions for parent in (*rev.down_revisions, *shipped.dependencies(rev.revision))}
    current_heads = sorted((rev for rev in shipped.by_id if rev not in needed), key=position.__getitem__)
    ancestors_by_index = [ancestors(head) for head in current_heads]
    output: list[str] = []
    index = 0
    while current_heads:
        candidate = current_heads[index]
        for other, needed in enumerate(ancestors_by_index):
            if other != index and candidate in needed:
                index = other  # another head needs this one: walk that head first
                break
        else:
            if candidate in todo:
                output.append(candidate)
                todo.remove(candidate)
            parents = [r for r in down[candidate] if r in todo and r not in current_heads]
            if not parents:
                del current_heads[index]
                del ancestors_by_index[index]
                index = max(index - 1, 0)
            elif not normalized[candidate] and len(shipped.by_id[candidate].down_revisions) == 1:
                current_heads[index] = parents[0]
                ancestors_by_index[index].discard(candidate)
            else:
                current_heads[index] = parents[0]
                current_heads.extend(parents[1:])
                ancestors_by_index[index] = ancestors(parents[0])
                ancestors_by_index.extend(ancestors(head) for head in parents[1:])
    if todo:
        return None
    output.reverse()
    return output
