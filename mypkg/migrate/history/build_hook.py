"""The wheel build hook of plugin packages: their revision manifest, as the package's own.

A plugin's ``pyproject.toml`` asks for it by name (docs/plugins.md)::

    [build-system]
    requires = ["hatchling", "mypkg"]
    build-backend = "hatchling.build"

    [tool.hatch.build.targets.wheel.hooks.mypkg-migrations]

Hatchling finds it through this package's ``hatch`` entry point. For each entry point
the plugin declares in the group ``mypkg.migrations``, it reads the package's
``versions/`` scripts (with :mod:`ast`, never imported), checks that the first revision
carries the plugin's name as its branch label, and writes ``manifest.json`` beside
``versions/`` in the wheel: the installed plugin's checksums and graph, read without
importing a script (the fast path). The build fails, in one line, on what would be
refused at run time. Imported only by hatchling.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl

from ..identity import PLUGIN_BUILD_HOOK, PLUGIN_GROUP, PLUGIN_MANIFEST
from . import manifest
from .plugins import unlabelled_first


class PluginManifestHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = PLUGIN_BUILD_HOOK

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":  # an editable install reads the scripts
            return
        declared = self.metadata.core.entry_points.get(PLUGIN_GROUP, {})
        if not declared:
            raise RuntimeError(f'cannot build: no entry point in [project.entry-points."{PLUGIN_GROUP}"] names the plugin')
        self._scratch = Path(tempfile.mkdtemp(prefix="plugin-manifest-"))
        for name, value in sorted(declared.items()):
            package = value.split("[", 1)[0].split(":", 1)[0].strip()
            inside = package.replace(".", "/")
            folder = next((Path(self.root, *prefix, inside) for prefix in ((), ("src",))
                           if Path(self.root, *prefix, inside, "versions").is_dir()), None)
            if folder is None:
                raise RuntimeError(f"cannot build plugin {name}: no {inside}/versions folder (or src/{inside}/versions)")
            out = self._scratch / name / PLUGIN_MANIFEST
            out.parent.mkdir()
            out.write_text(manifest.to_json(plugin_revisions(name, folder / "versions")))
            build_data["force_include"][str(out)] = f"{inside}/{PLUGIN_MANIFEST}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def plugin_revisions(name: str, versions: Path) -> list[manifest.Revision]:
    """The plugin's revisions, in Alembic's load order.

    :raises RuntimeError: a script whose header cannot be read, no script, or a first
        revision without the plugin's name as its branch label.
    """
    try:
        revisions = manifest.scan(versions)
    except manifest.ScriptError as exc:
        raise RuntimeError(f"cannot build plugin {name}: {exc}") from None
    if not revisions:
        raise RuntimeError(f"cannot build plugin {name}: no revision scripts under {versions}")
    first = unlabelled_first(name, revisions)
    if first is not None:
        raise RuntimeError(f"cannot build plugin {name}: its first revision {first.revision} ({first.filename}) "
                           f"must carry branch_labels = ({name!r},)")
    return revisions


@hookimpl
def hatch_register_build_hook() -> type[PluginManifestHook]:
    return PluginManifestHook
