"""The migration scripts as Alembic sees them: its ``Config`` built in code, and the
``ScriptDirectory`` loaded once per process and checked against the shipped manifest.
Where they are is :mod:`.location`'s question.
"""

from __future__ import annotations

import contextlib
import functools
import os
import weakref
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

from ..identity import PACKAGE
from .location import script_location

__all__ = ["core_versions", "make_config", "path_of", "restricted", "script_directory", "script_location"]

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory


def make_config(**attributes: Any) -> Config:
    """An Alembic ``Config`` built in code: an installed package has no alembic.ini."""
    from alembic.config import Config

    # Passed as config_args (the parser's defaults) rather than set afterwards, so
    # that copies made with Config(config_file_name, config_args=...) keep it.
    # Subfolders of versions/ hold revisions too, as the manifest reads them (alembic.ini
    # says the same for the alembic command).
    options = {"script_location": script_location(), "recursive_version_locations": "true"}
    options.update(plugin_options())
    return Config(attributes=dict(attributes), config_args=options)


def plugin_options() -> dict[str, str]:
    """Alembic's options for the installed plugins' revisions: every ``versions/`` folder,
    the package's first (so Alembic loads them in the manifest's order); none without plugins."""
    from .manifest import load

    shipped = load()
    if not shipped.plugins:
        return {}
    folders = [core_versions(), *(plugin.versions for plugin in shipped.plugins)]
    # ConfigParser interpolates "%": doubled, so a folder may hold one.
    return {"version_locations": os.pathsep.join(folders).replace("%", "%%"), "path_separator": "os"}


def core_versions() -> str:
    """The package's own ``versions/`` folder (Alembic's ``versions`` property refuses to
    answer once plugins add folders of their own)."""
    from alembic.util import coerce_resource_to_filename

    return os.path.join(str(coerce_resource_to_filename(script_location())), "versions")


def path_of(revision: str) -> str:
    """The script file of a shipped revision (the package's or a plugin's)."""
    from .manifest import load

    shipped = load()
    return os.path.join(shipped.folder(revision) or core_versions(), shipped.by_id[revision].filename)


#: Graphs narrowed by :func:`restricted`, innermost last.
_restricted: list[ScriptDirectory] = []


def script_directory() -> ScriptDirectory:
    """The revision graph: the whole of it (:func:`_whole`), or the part a fresh install
    through a checkpoint still runs (:func:`restricted`)."""
    return _restricted[-1] if _restricted else _whole()


@contextlib.contextmanager
def restricted(root: str, keep: Collection[str], satisfied: Collection[str]) -> Iterator[None]:
    """Within the block, Alembic sees only the revisions ``keep`` (``root`` among them,
    as its base; every other parent must be kept too), and none of the ``satisfied``
    ones a dependency names: what an empty database still runs once a checkpoint of
    ``root`` is installed. The scripts a checkpoint replaces are not even imported (a
    thousand of them: a quarter of a second)."""
    from alembic.script import Script, ScriptDirectory
    from alembic.script.revision import RevisionMap

    from .manifest import load

    shipped = load()
    directory = ScriptDirectory.from_config(make_config())

    def scripts() -> Iterator[Script]:
        for entry in shipped.revisions:  # in Alembic's load order
            if entry.revision not in keep:
                continue
            script = Script._from_path(directory, os.path.realpath(path_of(entry.revision)))
            if script is None:
                continue
            if entry.revision == root:
                script.down_revision = None
            needed = tuple(dep for dep in _dependencies(script) if shipped.labels.get(dep, dep) not in satisfied)
            script.dependencies = needed[0] if len(needed) == 1 else (needed or None)
            yield script

    directory.revision_map = RevisionMap(scripts)
    imported(directory)
    _restricted.append(directory)
    try:
        yield
    finally:
        _restricted.remove(directory)


#: The script modules this process has run: their top-level state may have changed since.
_ran: weakref.WeakSet[Any] = weakref.WeakSet()


def as_if_new(plan: Collection[Script]) -> None:
    """Before ``plan`` runs: each of its scripts whose module already ran in this process
    (a fleet worker's previous target, roundtrip's upgrade again) gets its module executed
    anew, as a process of its own would have it. A script may change its module while it
    runs (gnocchi's 34c517bcc2dd appends to a top-level list, then drops what the list
    names): run twice in one process, it would do the first run's work again."""
    from alembic.util import load_python_file

    for script in plan:
        if script.module in _ran:
            script.module = load_python_file(os.path.dirname(script.path), os.path.basename(script.path))
        _ran.add(script.module)


def _dependencies(script: Script) -> tuple[str, ...]:
    found = script.dependencies
    if found is None:
        return ()
    return (found,) if isinstance(found, str) else tuple(found)


@functools.cache
def _whole() -> ScriptDirectory:
    """The revision graph, loaded once per process (every load imports every script).

    :raises MigrateError: an installed script the package's manifest names is gone: Alembic
        would see a shorter history (an upgrade stopping short of head and saying done, a
        database "migrated by a newer" package, a KeyError), so nothing runs on it.
    """
    from alembic.script import ScriptDirectory

    from .manifest import load

    directory = ScriptDirectory.from_config(make_config())
    shipped = load()
    built = {plugin.name for plugin in shipped.plugins if os.path.isfile(plugin.manifest)}
    for owner in ("", *sorted(built)) if shipped.source == "manifest" else sorted(built):
        missing = [rev.filename for rev in shipped.revisions
                   if shipped.owner.get(rev.revision, "") == owner and not os.path.isfile(path_of(rev.revision))]
        if missing:
            from ..errors import MigrateError

            plugin = shipped.plugin(owner)
            what = PACKAGE if plugin is None else plugin.distribution
            raise MigrateError(
                f"the install of {what} is damaged: {len(missing)} revision script(s) it shipped are "
                f"missing, e.g. {missing[0]}; nothing was run; reinstall {what}"
            )
    return imported(directory)


def imported(directory: ScriptDirectory) -> ScriptDirectory:
    """``directory`` with every script imported now, before anything runs.

    :raises MigrateError: a script that fails to import (a module it imports is gone, a
        syntax error), named with its error: Alembic imports scripts lazily, deep inside
        working out a plan, where the error would read as a revision that is not there.
    """
    from .manifest import load

    try:
        directory.revision_map.heads  # noqa: B018 - the map loads every script
    except Exception as exc:
        known = {os.path.realpath(path_of(rev.revision)) for rev in load().revisions}
        failing = exc.filename if isinstance(exc, SyntaxError) else None
        frame = exc.__traceback__
        while frame is not None:  # the innermost frame in a script: the script that failed
            if os.path.realpath(frame.tb_frame.f_code.co_filename) in known:
                failing = frame.tb_frame.f_code.co_filename
            frame = frame.tb_next
        if failing is None or os.path.realpath(failing) not in known:
            raise
        from ..errors import MigrateError

        raise MigrateError(f"revision script {os.path.basename(failing)} cannot be imported: "
                           f"{type(exc).__name__}: {exc}; nothing was run") from exc
    return directory
