"""The revision manifest: every shipped revision's id, parents, message and sha256.

Built into the wheel (and so the conda package) as ``mypkg/migrations/manifest.json``
by ``hatch_build.py``; in a source tree or an editable install it is computed from the
scripts on the fly. It answers "which revisions exist, which are heads, what did each
script look like when shipped" without importing a single script, so it is also the
fast path for read-only questions.

Standard library only: the wheel build loads this file by path, before mypkg is
installed and without Alembic.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

FILENAME = "manifest.json"
FORMAT = 1

# Module-level assignments as Alembic's script template writes them, with or without
# annotations: ``revision: str = 'abc'`` / ``down_revision = ('a', 'b')``.
_ASSIGNMENT = re.compile(
    r"^(revision|down_revision)\s*(?::[^=\n]+)?=\s*(.+?)\s*$", re.MULTILINE
)
_DOCSTRING = re.compile(r'^\s*(?:[rRuU]?"""|[rRuU]?\'\'\')\s*(.*?)\s*$', re.MULTILINE)


class Revision(NamedTuple):
    revision: str
    down_revisions: tuple[str, ...]
    message: str
    sha256: str
    filename: str


def parse_script(path: Path) -> Revision | None:
    """A revision script's header, read as text (never imported); None if not a revision."""
    import ast
    import hashlib
    data = path.read_bytes()
    text = data.decode("utf-8")
    values: dict[str, object] = {}
    for name, expression in _ASSIGNMENT.findall(text):
        if name not in values:
            values[name] = ast.literal_eval(expression)
    if not isinstance(values.get("revision"), str):
        return None
    down = values.get("down_revision")
    parents = () if down is None else (down,) if isinstance(down, str) else tuple(down)  # type: ignore[arg-type]
    docstring = _DOCSTRING.match(text)
    return Revision(
        revision=str(values["revision"]),
        down_revisions=tuple(str(p) for p in parents),
        message=docstring.group(1) if docstring else "",
        sha256=hashlib.sha256(data).hexdigest(),
        filename=path.name,
    )


def scan(versions: Path) -> list[Revision]:
    found = [parse_script(path) for path in sorted(versions.glob("*.py"))]
    return [rev for rev in found if rev is not None]


def to_json(revisions: list[Revision]) -> str:
    payload = {"format": FORMAT, "revisions": [rev._asdict() for rev in revisions]}
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"


class Manifest:
    """The shipped revision graph, from the manifest file or the scripts themselves."""

    def __init__(self, revisions: list[Revision], source: str) -> None:
        self.by_id = {rev.revision: rev for rev in revisions}
        self.source = source  #: "manifest" (built) or "scripts" (parsed on the fly)
        children = {parent for rev in revisions for parent in rev.down_revisions}
        self.heads = tuple(sorted(rev.revision for rev in revisions if rev.revision not in children))

    def __contains__(self, revision: str) -> bool:
        return revision in self.by_id

    def ancestors(self, revisions: tuple[str, ...]) -> list[str]:
        """Every revision applied when the database is at ``revisions`` (inclusive)."""
        seen: dict[str, None] = {}  # ordered, O(1) membership
        stack = list(revisions)
        while stack:
            rev = stack.pop()
            if rev in seen or rev not in self.by_id:
                continue
            seen[rev] = None
            stack.extend(self.by_id[rev].down_revisions)
        return list(seen)

    def ordered(self) -> list[Revision]:
        """Oldest first (parents before children), in linear time.

        A linear history is walked down from its head, as Alembic's history is; a
        branched one is sorted topologically (Kahn), ties broken by revision id.
        """
        if len(self.heads) == 1:
            chain = []
            rev: str | None = self.heads[0]
            while rev is not None and rev in self.by_id:
                chain.append(self.by_id[rev])
                parents = self.by_id[rev].down_revisions
                rev = parents[0] if len(parents) == 1 else None
            if len(chain) == len(self.by_id):
                chain.reverse()
                return chain
        waiting = {rev: len(entry.down_revisions) for rev, entry in self.by_id.items()}
        children: dict[str, list[str]] = {}
        for rev, entry in self.by_id.items():
            for parent in entry.down_revisions:
                if parent in self.by_id:
                    children.setdefault(parent, []).append(rev)
                else:
                    waiting[rev] -= 1
        ready = sorted(rev for rev, count in waiting.items() if count == 0)
        done: list[str] = []
        while ready:
            rev = ready.pop(0)
            done.append(rev)
            for child in children.get(rev, ()):
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
            ready.sort()
        return [self.by_id[rev] for rev in done]


@functools.cache
def load() -> Manifest:
    """The installed package's manifest, else a scan of the source tree's scripts."""
    # Beside this module, as importlib.resources would find it in a regular install;
    # a plain path skips importing importlib.resources (and zipfile) on the fast path.
    from .identity import BUNDLED_SCRIPTS

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    built = os.path.join(package, BUNDLED_SCRIPTS, FILENAME)
    if os.path.isfile(built):
        with open(built, encoding="utf-8") as handle:
            payload = json.load(handle)
        revisions = [
            Revision(**{**item, "down_revisions": tuple(item["down_revisions"])})
            for item in payload["revisions"]
        ]
        return Manifest(revisions, "manifest")
    from pathlib import Path

    from .scripts import script_location

    return Manifest(scan(Path(script_location()) / "versions"), "scripts")
