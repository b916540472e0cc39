"""Installed plugins: distributions that bring their own migrations (docs/plugins.md).

A plugin is any installed distribution declaring an entry point in the group
``mypkg.migrations`` (:data:`~..identity.PLUGIN_GROUP`): the entry point's name is the
plugin's name, which is also the branch label of its revisions; its value names an
importable package whose ``versions/`` folder holds them. Its wheel carries their
manifest (``manifest.json`` beside ``versions/``, built by the same hook as the core's).

The entry points are read from each distribution's ``entry_points.txt`` here rather
than through :mod:`importlib.metadata`, which imports ``email``, ``zipfile`` and ``csv``
(40 ms, as much as the whole no-op ``upgrade`` of the fast path, which runs at every
deploy and must find the plugins too). The answer is the same: the first distribution of
a name on ``sys.path`` wins (a test compares the two on installed wheels).

Standard library only, and nothing is imported from the plugins themselves.
"""

from __future__ import annotations

import functools
import os
import sys
from collections import namedtuple

from ..identity import PLUGIN_GROUP, PLUGIN_MANIFEST

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    from .manifest import Revision

__all__ = ["Plugin", "entry_points", "installed", "tables", "unlabelled_first"]

if TYPE_CHECKING:  # collections' namedtuple at run time: typing costs every start 2 ms
    class _Fields(NamedTuple):
        #: The entry point's name: the plugin's name and its revisions' branch label.
        name: str
        #: The distribution that declares it (``pip uninstall`` takes this name) and its version.
        distribution: str
        version: str
        #: The importable package the entry point names.
        package: str
        #: That package's folder; "" when it cannot be found (the distribution is broken).
        folder: str
else:
    _Fields = namedtuple("Plugin", "name distribution version package folder")


class Plugin(_Fields):
    """One installed plugin."""

    __slots__ = ()

    @property
    def versions(self) -> str:
        return os.path.join(self.folder, "versions")

    @property
    def manifest(self) -> str:
        return os.path.join(self.folder, PLUGIN_MANIFEST)


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (``-``, ``_`` and ``.`` alike; a
    folder name never holds a run of them)."""
    return name.replace("_", "-").replace(".", "-").lower()


def _metadata_folders(entry: str) -> list[tuple[str, str, str]]:
    """(distribution, version, folder) of each ``*.dist-info``/``*.egg-info`` in ``entry``,
    sorted as importlib.metadata reads a folder (by name)."""
    try:
        names = sorted(os.listdir(entry or "."))
    except OSError:  # not a folder (a zip), gone, unreadable: importlib.metadata skips it too
        return []
    found = []
    for name in names:
        stem, dot, kind = name.rpartition(".")
        if dot and kind in ("dist-info", "egg-info"):
            distribution, _, version = stem.partition("-")
            found.append((distribution, version, os.path.join(entry or ".", name)))
    return found


def _group(text: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of one ``[group]`` of an entry_points.txt (an INI file)."""
    found, inside = [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line == f"[{group}]"
        elif inside and "=" in line:
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip()))
    return found


def entry_points(group: str = PLUGIN_GROUP, path: list[str] | None = None) -> list[tuple[str, str, str, str]]:
    """(name, value, distribution, version) of every entry point in ``group``, in sys.path
    order, each distribution counted once (the first found, as importlib.metadata does)."""
    return [found[:4] for found in _located(group, path)]


def _located(group: str, path: list[str] | None) -> list[tuple[str, str, str, str, str]]:
    """:func:`entry_points`, each with the sys.path entry its distribution was found in."""
    seen: set[str] = set()
    found: list[tuple[str, str, str, str, str]] = []
    for entry in sys.path if path is None else path:
        for distribution, version, folder in _metadata_folders(entry):
            key = _normalized(distribution)
            if key in seen:
                continue
            seen.add(key)
            try:
                with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            found.extend((name, value, distribution, version, entry) for name, value in _group(text, group))
    return found


def _package_folder(package: str) -> str:
    """Where ``package`` would be imported from, without importing it ("" if nowhere)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return ""
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    return locations[0] if locations else ""


def unlabelled_first(name: str, revisions: list[Revision]) -> Revision | None:
    """A plugin's first revision (no parent among its own) that does not carry the plugin's
    name as its branch label: the wheel build and every run refuse it alike."""
    own = {rev.revision for rev in revisions}
    return next((rev for rev in revisions if not own.intersection(rev.down_revisions)
                 and name not in rev.branch_labels), None)


@functools.cache
def tables() -> frozenset[str]:
    """The tables the installed plugins declare in their package's top-level ``metadata``
    (a SQLAlchemy ``MetaData``): the package's own comparisons (``check``, ``alembic
    revision --autogenerate``) leave them to their plugin. Imports the plugins: for those
    comparisons only.

    :raises MigrateError: a plugin's package fails to import.
    """
    import importlib

    names: set[str] = set()
    for plugin in installed():
        try:
            module = importlib.import_module(plugin.package)
        except Exception as exc:  # noqa: BLE001 - a plugin's own bug, named in one line
            from ..errors import MigrateError

            raise MigrateError(f"plugin {plugin.name} ({plugin.distribution}) cannot be imported: "
                               f"{type(exc).__name__}: {exc}") from None
        declared = getattr(getattr(module, "metadata", None), "tables", None) or {}
        names.update(table.name for table in declared.values())
    return frozenset(names)


@functools.cache
def installed() -> tuple[Plugin, ...]:
    """Every installed plugin, by name."""
    plugins = []
    for name, value, distribution, version, entry in _located(PLUGIN_GROUP, None):
        # "package" or "package:attribute" or "package [extra]": the package is what counts.
        package = value.split("[", 1)[0].split(":", 1)[0].strip()
        # Where pip installed it, beside its metadata (one stat); else where Python finds it.
        beside = os.path.join(entry or ".", *package.split("."))
        folder = beside if os.path.isfile(os.path.join(beside, "__init__.py")) else _package_folder(package)
        plugins.append(Plugin(name, distribution.replace("_", "-"), version, package, folder))
    return tuple(sorted(plugins))
