"""Wheel build hook: write the revision manifest into the package's migrations/ folder.

The manifest (ids, parents, labels, messages, sha256 of every script under
alembic/versions) lets an installed package verify checksums and answer read-only
questions without importing the scripts. The build fails, naming the file or the entry,
on a script whose header cannot be read or a release map entry naming no revision.
Editable installs skip it: they read the live scripts.

Checkpoints (alembic/checkpoints/*.json) are proven before they ship: each is replayed
and installed into scratch SQLite files (by the package's own machinery, run from the
source tree in a subprocess) and the build fails on any difference, naming it. That
needs alembic and SQLAlchemy at build time, asked for only when there is a checkpoint.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
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


#: Run from the source root: every checkpoint against the replay, one line per difference.
_PROVE = f"from {PACKAGE}.migrate.checks.checkpoint import prove_all; print(*prove_all(), sep=chr(10))"


class RevisionManifestHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # The runtime's own minimums: the proof runs the package from the source tree.
        return ["alembic>=1.16.3,<2", "sqlalchemy>=2.0,<3", "filelock>=3.13"] if self._checkpoints() else []

    def _checkpoints(self) -> list[Path]:
        return sorted((Path(self.root) / "alembic" / "checkpoints").glob("*.json"))

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
        if found and not problems:
            problems += self._prove(root)
        if problems:
            raise RuntimeError("cannot build the revision manifest: " + "; ".join(problems))
        # Written outside the tree (never a stray file in a checkout); removed in finalize.
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{PACKAGE}-manifest-"))
        out = self._scratch / module.FILENAME
        out.write_text(module.to_json(revisions, ordering.history_order(shipped)))
        build_data["force_include"][str(out)] = f"{PACKAGE}/migrations/{module.FILENAME}"

    def _prove(self, root: Path) -> list[str]:
        """Every checkpoint against the replay on SQLite; a line per difference."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(f"{PACKAGE.upper()}_")}
        env["PYTHONPATH"] = str(root)
        done = subprocess.run([sys.executable, "-c", _PROVE], cwd=root, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return [f"the checkpoints could not be proven: {last}"]
        return [f"checkpoint differs from the replay: {line}" for line in done.stdout.splitlines() if line.strip()]

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
