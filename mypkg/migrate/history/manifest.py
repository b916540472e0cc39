"""The revision manifest: every shipped revision's id, parents, labels, message and sha256.

Built into the wheel as ``<package>/migrations/manifest.json`` by ``hatch_build.py``; in a
source tree computed from the scripts on the fly. It answers which revisions exist, which
are heads, in which order Alembic lists them and what each script was when shipped, without
importing a script (the fast path). Scripts are read with :mod:`ast` in Alembic's load
order; the history order is Alembic's own (:mod:`.order`). Standard library only: the wheel
build loads this file by path, before the package is installed and without Alembic.
"""

from __future__ import annotations

import functools
import json
import os
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from .plugins import Plugin

FILENAME = "manifest.json"
FORMAT = 2
#: The module-level names Alembic reads from a revision script.
FIELDS = ("revision", "down_revision", "branch_labels", "depends_on")


class ScriptError(ValueError):
    """A revision script whose header cannot be read without running it."""


if TYPE_CHECKING:  # collections' namedtuple at run time: typing costs every start 2 ms
    from typing import NamedTuple

    class Revision(NamedTuple):
        revision: str
        down_revisions: tuple[str, ...]
        message: str
        sha256: str
        #: Relative to ``versions/``, with ``/`` (subfolders with recursive_version_locations).
        filename: str
        branch_labels: tuple[str, ...] = ()
        depends_on: tuple[str, ...] = ()
        phase: str = ""  #: as the script declares it (``phase = "post"``), "" if not (:mod:`.phases`)
else:
    Revision = namedtuple("Revision", "revision down_revisions message sha256 filename branch_labels depends_on "
                          "phase", defaults=((), (), ""))


def _as_tuple(value: object, name: str, where: str) -> tuple[str, ...]:
    if value is None or value == ():
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ScriptError(f"{where}: {name} must be a string, a tuple or list of strings, or None")


def _message(docstring: str | None) -> str:
    """Alembic's ``Script.doc``: the docstring's first paragraph."""
    return docstring.strip().split("\n\n")[0] if docstring else ""


def parse_script(path: Path, filename: str | None = None) -> Revision | None:
    """A revision script's header, read with :mod:`ast` (never imported).

    None for files Alembic skips (``__init__.py``, editor lock files ``.#x.py``).

    :raises ScriptError: a header that is not made of literals, or no ``revision``.
    """
    import ast
    import hashlib

    name = filename or path.name
    if path.name.startswith((".#", "__init__")) or not path.name.endswith(".py"):
        return None
    data = path.read_bytes()
    try:
        tree = ast.parse(data, filename=str(path))
    except SyntaxError as exc:
        raise ScriptError(f"{name}: not valid Python: {exc.msg} (line {exc.lineno})") from None
    values: dict[str, object] = {}
    for node in tree.body:  # later assignments win, as when Python runs the module
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            targets = [node.target.id]
        else:
            continue
        for target in targets:
            if target in (*FIELDS, "phase"):
                try:
                    values[target] = ast.literal_eval(node.value)  # type: ignore[arg-type]
                except ValueError:  # a named constant (neutron's cli.CONTRACT_BRANCH): read from its source
                    try:  # .constants is absent when the build loads this module alone
                        from .constants import resolve

                        values[target] = resolve(node.value, tree)  # type: ignore[arg-type]
                    except (ImportError, ValueError, OSError, SyntaxError):
                        raise ScriptError(f"{name}: {target} must be a literal, or a constant of a module on the path (line {node.lineno})") from None  # noqa: E501
    revision = values.get("revision")
    if not isinstance(revision, str):
        raise ScriptError(f"{name}: no module-level revision = '...' (Alembic could not load it either)")
    return Revision(
        revision=revision,
        down_revisions=_as_tuple(values.get("down_revision"), "down_revision", name),
        message=_message(ast.get_docstring(tree, clean=False)),
        sha256=hashlib.sha256(data).hexdigest(),
        filename=name,
        branch_labels=_as_tuple(values.get("branch_labels"), "branch_labels", name),
        depends_on=_as_tuple(values.get("depends_on"), "depends_on", name),
        phase=str(values.get("phase") or ""),
    )


def script_paths(versions: Path, *, recursive: bool) -> list[tuple[Path, str]]:
    """The files under ``versions`` in the order Alembic loads them (files sorted, then
    subfolders sorted, depth first), each with its name relative to ``versions``."""
    found: list[tuple[Path, str]] = []
    for root, dirs, files in os.walk(versions):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__") if recursive else []
        for name in sorted(files):
            path = os.path.join(root, name)
            found.append((versions.joinpath(os.path.relpath(path, versions)), os.path.relpath(path, versions).replace(os.sep, "/")))
    return found


def scan(versions: Path, *, recursive: bool = True) -> list[Revision]:
    """Every revision under ``versions``, in Alembic's load order (:raises ScriptError:)."""
    found = [parse_script(path, name) for path, name in script_paths(versions, recursive=recursive)]
    return [rev for rev in found if rev is not None]


def to_json(revisions: list[Revision], history_order: list[str] | None = None) -> str:
    """The manifest file, with the history order (:mod:`.order`) the build worked out once."""
    payload = {"format": FORMAT, "revisions": [rev._asdict() for rev in revisions], "history_order": history_order}
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"


def from_json(text: str) -> tuple[list[Revision], list[str] | None]:
    """The revisions, and the history order if the build recorded one."""
    payload = json.loads(text)
    # By position, not by keyword: a thousand revisions are read at every start.
    revisions = [
        Revision(item["revision"], tuple(item["down_revisions"]), item["message"], item["sha256"], item["filename"],
                 tuple(item.get("branch_labels", ())), tuple(item.get("depends_on", ())), item.get("phase", ""))
        for item in payload["revisions"]
    ]
    return revisions, payload.get("history_order")


class Manifest:
    """The shipped revision graph, from the manifest file or the scripts themselves."""

    def __init__(self, revisions: list[Revision], source: str, history_order: list[str] | None = None,
                 plugins: tuple[Plugin, ...] = (), owner: dict[str, str] | None = None) -> None:
        self.revisions = revisions  #: in Alembic's load order (the core's, then each plugin's)
        #: The installed plugins whose revisions follow the core's, and which revision is whose.
        self.plugins = plugins
        self.owner = owner or {}
        self.recorded_order = history_order  #: as the build worked it out, if it did
        self.by_id = {rev.revision: rev for rev in revisions}
        self.source = source  #: "manifest" (built) or "scripts" (parsed on the fly)
        children = {parent for rev in revisions for parent in rev.down_revisions}
        #: In load order, as Alembic's ``get_heads()`` gives them.
        self.heads = tuple(rev.revision for rev in revisions if rev.revision not in children)
        self.labels = {label: rev.revision for rev in revisions for label in rev.branch_labels}
        # Resolved once: every walk of the graph asks for each revision's (at every start).
        labels = self.labels
        self._dependencies = {rev.revision: tuple(labels.get(dep, dep) for dep in rev.depends_on) if rev.depends_on
                              else () for rev in revisions}

    def plugin(self, name: str) -> Plugin | None:
        return next((plugin for plugin in self.plugins if plugin.name == name), None)

    def folder(self, revision: str) -> str | None:
        """The ``versions/`` folder of a plugin's revision; None for the core's."""
        owner = self.owner.get(revision)
        found = self.plugin(owner) if owner else None
        return None if found is None else found.versions

    def from_build(self, revision: str) -> bool:
        """Whether the revision's sha256 comes from a manifest built with its wheel (the
        script on disk may differ since), not from the script itself (a source tree)."""
        owner = self.plugin(self.owner.get(revision, ""))
        return self.source == "manifest" if owner is None else os.path.isfile(owner.manifest)

    def core_heads(self) -> tuple[str, ...]:
        return tuple(rev for rev in self.heads if rev not in self.owner)

    def __contains__(self, revision: str) -> bool:
        return revision in self.by_id

    def dependencies(self, revision: str) -> tuple[str, ...]:
        """``depends_on`` resolved to revision ids (a branch label names its revision)."""
        return self._dependencies[revision]

    def ancestors(self, revisions: tuple[str, ...]) -> list[str]:
        """Every revision applied when the database is at ``revisions`` (inclusive),
        dependencies included, as Alembic counts them."""
        seen: dict[str, None] = {}  # ordered, O(1) membership
        stack = list(revisions)
        while stack:
            rev = stack.pop()
            if rev in seen or rev not in self.by_id:
                continue
            seen[rev] = None
            stack.extend(self.by_id[rev].down_revisions)
            stack.extend(self.dependencies(rev))
        return list(seen)

    def problems(self) -> list[str]:
        """What makes this graph one Alembic would refuse or warn about; [] when sound."""
        found = []
        if len(self.by_id) != len(self.revisions):
            found.append("a revision id is used by two scripts")
        for rev in self.revisions:
            for parent in (*rev.down_revisions, *self.dependencies(rev.revision)):
                if parent not in self.by_id:
                    found.append(f"{rev.filename}: {rev.revision} refers to {parent}, which no script defines")
        return found

    def ordered(self) -> list[Revision] | None:
        """Oldest first, exactly as Alembic's history lists them; None when Alembic's own
        order is not deterministic (a revision with several dependencies to resolve)."""
        if self.recorded_order is not None:
            ids: list[str] | None = self.recorded_order
        else:
            from .order import history_order

            # Once: a fleet asks for every target, and with plugins no build recorded it.
            ids = self.recorded_order = history_order(self)
        return None if ids is None else [self.by_id[rev] for rev in ids]


@functools.cache
def load() -> Manifest:
    """The revisions installed: the package's own (:func:`core`) and every installed
    plugin's (:mod:`.plugins`) after them, as Alembic loads them.

    :raises MigrateError: a plugin that does not fit this installation, in one line
        (it needs a revision the package does not ship, has no branch label...).
    """
    from .plugins import installed

    found = installed()
    return with_plugins(core(), found) if found else core()


def with_plugins(shipped: Manifest, plugins: tuple[Plugin, ...]) -> Manifest:
    """``shipped`` with the revisions of ``plugins`` after its own (:raises MigrateError: as :func:`load`)."""
    from ..errors import MigrateError
    from ..identity import PACKAGE

    revisions = list(shipped.revisions)
    owner: dict[str, str] = {}
    for plugin in plugins:
        own = plugin_revisions(plugin)
        for rev in own:
            if rev.revision in owner or rev.revision in shipped.by_id:
                first = owner.get(rev.revision, PACKAGE)
                raise MigrateError(f"plugin {plugin.name}'s revision {rev.revision} is shipped by "
                                   f"{'plugin ' if first != PACKAGE else ''}{first} too: ids must be unique")
            owner[rev.revision] = plugin.name
        revisions.extend(own)
    merged = Manifest(revisions, shipped.source, None, plugins, owner)
    problem = _plugin_problem(shipped, merged)
    if problem:
        raise MigrateError(problem)
    return merged


def plugin_revisions(plugin: Plugin) -> list[Revision]:
    """A plugin's revisions: from the manifest its wheel carries, else its scripts.

    :raises MigrateError: the plugin's package or its revisions cannot be read.
    """
    from ..errors import MigrateError
    from ..identity import PLUGIN_GROUP

    where = f"plugin {plugin.name} ({plugin.distribution} {plugin.version})"
    if not plugin.package.replace(".", "").replace("_", "").isalnum() or plugin.package.startswith("."):
        raise MigrateError(f"{where}: its entry point in [{PLUGIN_GROUP}] names no package ({plugin.package!r}); it must be package or package:attribute: fix {plugin.distribution}'s metadata")  # noqa: E501
    if not plugin.folder:
        raise MigrateError(f"{where} names package {plugin.package}, which cannot be imported: reinstall {plugin.distribution}")
    try:
        if os.path.isfile(plugin.manifest):
            with open(plugin.manifest, encoding="utf-8") as handle:
                return from_json(handle.read())[0]
        if os.path.isdir(plugin.versions):
            from pathlib import Path

            return scan(Path(plugin.versions))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # ScriptError is a ValueError
        raise MigrateError(f"{where} cannot be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                           f"reinstall {plugin.distribution}") from None
    raise MigrateError(f"{where} has no versions/ folder in {plugin.folder}: reinstall {plugin.distribution}")


def _plugin_problem(shipped: Manifest, merged: Manifest) -> str | None:
    """The first reason the plugins do not fit the core (and each other); None when they do."""
    import re

    from ..identity import PACKAGE
    from ..version import package_version
    from .plugins import unlabelled_first

    names = [plugin.name for plugin in merged.plugins]
    for plugin in merged.plugins:
        if names.count(plugin.name) > 1:
            others = " and ".join(p.distribution for p in merged.plugins if p.name == plugin.name)
            return f"two distributions declare plugin {plugin.name}: {others}; uninstall one of them"
    for plugin in merged.plugins:
        own = [rev for rev in merged.revisions if merged.owner.get(rev.revision) == plugin.name]
        first = unlabelled_first(plugin.name, own)
        if first is not None:
            return (f"plugin {plugin.name}: its first revision {first.revision} ({first.filename}) must carry "
                    f"branch_labels = ({plugin.name!r},), its name, for {plugin.name}@head and {plugin.name}@base to mean it")
    for rev in merged.revisions:
        name = merged.owner.get(rev.revision)
        if name is None:
            continue
        for needed in (*rev.down_revisions, *rev.depends_on):
            if merged.labels.get(needed, needed) in merged.by_id:
                continue
            if re.fullmatch(r"[0-9a-f]+", needed):
                ships = ", ".join(shipped.heads)
                return (f"plugin {name} needs {PACKAGE} with revision {needed}; this {PACKAGE} "
                        f"({package_version()}) ships up to {ships}: upgrade {PACKAGE}, or install the plugin that ships {needed}")
            return f"plugin {name} needs {needed!r}, which neither {PACKAGE} nor an installed plugin provides: install it first"
    return None


@functools.cache
def core() -> Manifest:
    """The installed package's manifest, else a scan of the source tree's scripts."""
    # Beside this module, as importlib.resources would find it in a regular install;
    # a plain path skips importing importlib.resources (and zipfile) on the fast path.
    from ..identity import BUNDLED_SCRIPTS, PACKAGE_DIR

    built = os.path.join(PACKAGE_DIR, BUNDLED_SCRIPTS, FILENAME)
    if os.path.isfile(built):
        try:
            with open(built, encoding="utf-8") as handle:
                revisions, order = from_json(handle.read())
        except (OSError, ValueError, KeyError, TypeError) as exc:  # truncated, hand-edited
            from ..errors import MigrateError
            from ..identity import PACKAGE

            raise MigrateError(
                f"the install of {PACKAGE} is damaged: {BUNDLED_SCRIPTS}/{FILENAME} cannot be read "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); reinstall {PACKAGE}"
            ) from None
        return Manifest(revisions, "manifest", order)
    from pathlib import Path

    from .location import script_location

    return Manifest(scan(Path(script_location()) / "versions"), "scripts")


def read_releases(path: Path) -> dict[str, str]:
    """The ``RELEASES`` mapping of a release map module, read with :mod:`ast`.

    :raises ScriptError: no ``RELEASES = {...}`` literal of strings.
    """
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets if isinstance(node, ast.Assign) else []
        named = any(isinstance(target, ast.Name) and target.id == "RELEASES" for target in targets)
        if named and node.value is not None:  # type: ignore[union-attr]
            try:
                value = ast.literal_eval(node.value)  # type: ignore[union-attr]
            except ValueError:
                break
            if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                return value
    raise ScriptError(f"{path.name}: no RELEASES = {{'version': 'revision', ...}} literal")


def release_problems(
    releases: dict[str, str], shipped: Manifest, retired: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """(version, why) for each release naming no shipped revision (or a prefix of several);
    a release whose head a checkpoint has ``retired`` since names one that was shipped."""
    found = []
    for version, revision in releases.items():
        if any(rev.startswith(revision) for rev in retired):
            continue
        matches = [rev for rev in shipped.by_id if rev.startswith(revision)]
        if revision not in shipped.by_id and len(matches) != 1:
            what = "no shipped revision" if not matches else f"{len(matches)} revisions"
            found.append((version, f"release {version} names revision {revision!r}, which matches {what}"))
    return found
