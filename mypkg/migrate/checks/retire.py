"""Retiring the scripts a shipped checkpoint replaces: ``checkpoint REV --retire``.

Once a release ships REV's checkpoint, every empty database installs it, and every
database already past REV never runs the scripts before it again: only databases still
sitting before REV need them, and the releases that shipped them can upgrade those. So,
in the source tree:

1. the scripts of REV's ancestors are deleted;
2. REV's script no longer names its parents (``down_revision = None``, with a comment
   saying which it had), so that ``alembic`` loads the shorter history too;
3. the checkpoint file records the retired ids, the newest release of the release map
   (the last that ships them) and the sha256 REV's script had before the cut (a
   database that ran it then still verifies).

Refused unless a release of the map already ships REV (its head is REV or after it),
and when a revision the checkpoint does not cover builds on a retired one.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from ..errors import UsageError
from ..history import checkpoints, graph, manifest, scripts
from ..identity import COMMAND, PACKAGE_DIR


def retire(revision: str) -> Path:
    """Retire the scripts before ``revision``'s checkpoint; returns the checkpoint file.

    :raises UsageError: no checkpoint of it, no release ships it, already retired, or a
        revision outside the checkpoint builds on a retired one.
    """
    from ..history.location import script_location

    if not Path(script_location()).is_absolute():
        from ..history.location import not_a_checkout

        raise UsageError(not_a_checkout("checkpoint --retire edits"))
    graph.require_revision(revision)
    script = graph.script(revision)
    found = next((c for c in checkpoints.shipped() if script is not None and c.revision == script.revision), None)
    if script is None or found is None:
        raise UsageError(f"no checkpoint of {revision}: write one first ({COMMAND} checkpoint {revision})")
    if found.retired:
        raise UsageError(f"the scripts before {found.revision} are retired already")
    covered = graph.ancestors((found.revision,))
    releases = manifest.read_releases(Path(PACKAGE_DIR) / "releases.py")
    shipping = [version for version, head in releases.items()
                if (graph.script(head) is not None and found.revision in graph.ancestors((graph.script(head).revision,)))]
    if not shipping:
        raise UsageError(f"no release in the release map ships {found.revision} yet: release the checkpoint "
                         "first, so that databases before it have a release that upgrades them")
    retired = covered - {found.revision}
    directory = scripts.script_directory()
    for other in directory.walk_revisions():
        if other.revision in covered:
            continue
        parents = set(graph.as_tuple(other.down_revision)) | set(graph.as_tuple(other.dependencies))
        if parents & retired:
            raise UsageError(f"{other.revision} builds on {sorted(parents & retired)[0]}, which the checkpoint "
                             f"of {found.revision} replaces but does not precede it: nothing was retired")
    path = Path(script.path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    _cut_parents(path, graph.as_tuple(script.down_revision), retired)
    for rev in retired:
        Path(directory.get_revision(rev).path).unlink()
    payload = json.loads(found.path.read_text())
    # The sums the build checks: the cut script as it is now (the one before, for databases
    # that ran it, is script_sha256_before); the retired scripts are gone, their sums kept.
    sums = None if found.scripts is None else {**found.scripts, found.revision: hashlib.sha256(path.read_bytes()).hexdigest()}
    found.path.write_text(checkpoints.to_json(found.revision, payload["forms"], {
        "revisions": sorted(retired), "last_release": list(releases)[-1], "script_sha256_before": before,
    }, scripts=sums))
    checkpoints.shipped.cache_clear()
    return found.path


def _cut_parents(path: Path, parents: tuple[str, ...], retired: set[str]) -> None:
    """``down_revision = None`` in place of the parents; ``depends_on`` loses retired ids."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    for node in reversed(ast.parse(text).body):  # bottom up: line numbers above stay valid
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        name = getattr(target, "id", None)
        if name not in ("down_revision", "depends_on") or node.end_lineno is None:
            continue
        if name == "down_revision":
            new = f"down_revision = None  # retired into its checkpoint; was {parents!r}\n"
        else:
            named = graph.as_tuple(ast.literal_eval(node.value))
            kept = tuple(dep for dep in named if dep not in retired)
            if kept == named:
                continue  # nothing retired in it: the line stays as written
            new = f"depends_on = {kept or None!r}\n"
        lines[node.lineno - 1:node.end_lineno] = [new]
    path.write_text("".join(lines))
