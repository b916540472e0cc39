"""Wheel build hook: write the revision manifest into the package's migrations/ folder.

The manifest (ids, parents, labels, messages, sha256 of every script under
alembic/versions) lets an installed package verify checksums and answer read-only
questions without importing the scripts. The build fails, naming the file or the entry,
on a script whose header cannot be read or a release map entry naming no revision.
Editable installs skip it: they read the live scripts.

Checkpoints (alembic/checkpoints/*.json) are checked with what a build holds: each
file's own checksum and the sha256 of every script it covers, recorded when it was
written. A build runs no revision: pip's isolated build environment (and the conda
recipe's host environment) holds neither SQLAlchemy nor the application real revisions
import. The replay proof is ``mypkg-migrate checkpoint --prove``, in the author's CI,
and the suite.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "mypkg"


def _load(source: Path, name: str) -> object:
    """A standard-library-only module of the package, by path (it is not installed yet)."""
    spec = importlib.util.spec_from_file_location(name, source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class RevisionManifestHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        # The manifest module is standard-library only; load it by path (not installed yet).
        module = _load(root / PACKAGE / "migrate" / "history" / "manifest.py", f"_{PACKAGE}_manifest")
        ordering = _load(root / PACKAGE / "migrate" / "history" / "order.py", f"_{PACKAGE}_order")
        checkpoints = _load(root / PACKAGE / "migrate" / "history" / "checkpoints.py", f"_{PACKAGE}_checkpoints")
        try:
            found = checkpoints.in_folder(root / "alembic" / "checkpoints")
        except checkpoints.CheckpointError as exc:
            raise RuntimeError(f"cannot build: {exc}") from None
        # Releases older than a retirement name heads no longer shipped: not a problem.
        retired = frozenset(rev for checkpoint in found for rev in checkpoint.retired)
        try:
            revisions = module.scan(root / "alembic" / "versions")
            shipped = module.Manifest(revisions, "scripts")
            releases = module.read_releases(root / PACKAGE / "releases.py")
            problems = shipped.problems() + [why for _, why in module.release_problems(releases, shipped, retired)]
        except module.ScriptError as exc:
            raise RuntimeError(f"cannot build the revision manifest: {exc}") from None
        if not revisions:
            problems.append("no revision scripts under alembic/versions")
        if not problems:
            sha256_of = {rev.revision: rev.sha256 for rev in revisions}
            for checkpoint in found:
                covered = set(shipped.ancestors((checkpoint.revision,)))
                if checkpoint.revision not in shipped.by_id:
                    problems.append(f"{checkpoint.path.name}: no script defines {checkpoint.revision}")
                    continue
                problems += checkpoints.stale(checkpoint, sha256_of, covered)
        if problems:
            raise RuntimeError("cannot build the revision manifest: " + "; ".join(problems))
        # Written outside the tree (never a stray file in a checkout); removed in finalize.
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{PACKAGE}-manifest-"))
        out = self._scratch / module.FILENAME
        out.write_text(module.to_json(revisions, ordering.history_order(shipped)))
        build_data["force_include"][str(out)] = f"{PACKAGE}/migrations/{module.FILENAME}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
