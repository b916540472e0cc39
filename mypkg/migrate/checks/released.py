"""``lint --record-release``: the scripts each release shipped, by checksum, so that lint
notices a shipped script changed since (databases that applied the old one keep it)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..identity import PACKAGE


def scripts_folder() -> Path:
    """The folder of the revision scripts: the source tree's ``alembic/``, or the install's."""
    from ..history.location import script_location
    from ..identity import BUNDLED_SCRIPTS, PACKAGE_DIR

    location = script_location()
    return Path(PACKAGE_DIR) / BUNDLED_SCRIPTS if location == f"{PACKAGE}:{BUNDLED_SCRIPTS}" else Path(location)


#: Where ``lint --record-release`` keeps each release's script checksums, beside the scripts.
RELEASED = "released.json"


def _released_path() -> Path:
    return scripts_folder() / RELEASED


def record_release(version: str) -> tuple[Path, int]:
    """Record the sha256 of every script release ``version`` shipped (the ancestors of its
    head in the release map), so that lint notices when one of them changes later.

    :raises UsageError: a version not in the release map, or no source tree to write into.
    """
    from ...releases import revision_for
    from ..history.manifest import load

    shipped = load()
    if shipped.source != "scripts":
        raise UsageError("--record-release writes beside the scripts: run it in the source tree")
    revisions = shipped.ancestors((revision_for(version),))
    path = _released_path()
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded[version] = {rev: shipped.by_id[rev].sha256 for rev in sorted(revisions)}
    path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    return path, len(revisions)


def released_changes() -> list[tuple[str, str, str, str]]:
    """Scripts changed since a release that shipped them: databases that applied the old
    version keep it, and ``upgrade`` refuses them (checksum mismatch). Each as lint's
    finding's fields: revision, rule, statement, fix."""
    from ..history.manifest import load

    path = _released_path()
    if not path.exists():
        return []
    shipped = load()
    found = []
    for version, scripts in json.loads(path.read_text()).items():
        for revision, sha256 in scripts.items():
            now = shipped.by_id.get(revision)
            if now is None or now.sha256 != sha256:
                what = "was removed" if now is None else "changed"
                found.append((revision, "released-script-changed", now.filename if now else revision,
                              f"it {what} since release {version}: restore it and make the change in a new revision"))
    return found
