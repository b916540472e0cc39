"""Wheel build hook: write the revision manifest into mypkg/migrations/.

The manifest (ids, parents, messages, sha256 of every script under alembic/versions)
lets an installed mypkg verify checksums and answer read-only questions without
importing the scripts. Editable installs skip it: they read the live scripts.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class RevisionManifestHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        # mypkg/migrate/manifest.py is standard-library only; load it by path (not installed yet).
        spec = importlib.util.spec_from_file_location("_mypkg_manifest", root / "mypkg" / "migrate" / "manifest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        revisions = module.scan(root / "alembic" / "versions")
        if not revisions:
            raise RuntimeError("no revision scripts under alembic/versions")
        out = Path(tempfile.mkdtemp(prefix="mypkg-manifest-")) / module.FILENAME
        out.write_text(module.to_json(revisions))
        build_data["force_include"][str(out)] = f"mypkg/migrations/{module.FILENAME}"
