"""The migration scripts as Alembic sees them: its ``Config`` built in code, and the
``ScriptDirectory`` loaded once per process and checked against the shipped manifest.
Where they are is :mod:`.location`'s question.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ..identity import PACKAGE
from .location import script_location

__all__ = ["make_config", "script_directory", "script_location"]

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory


def make_config(**attributes: Any) -> Config:
    """An Alembic ``Config`` built in code: an installed package has no alembic.ini."""
    from alembic.config import Config

    # Passed as config_args (the parser's defaults) rather than set afterwards, so
    # that copies made with Config(config_file_name, config_args=...) keep it.
    # Subfolders of versions/ hold revisions too, as the manifest reads them (alembic.ini
    # says the same for the alembic command).
    return Config(
        attributes=dict(attributes),
        config_args={"script_location": script_location(), "recursive_version_locations": "true"},
    )


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revision graph, loaded once per process (every load imports every script).

    :raises MigrateError: an installed script the package's manifest names is gone: Alembic
        would see a shorter history (an upgrade stopping short of head and saying done, a
        database "migrated by a newer" package, a KeyError), so nothing runs on it.
    """
    import os

    from alembic.script import ScriptDirectory

    from .manifest import load

    directory = ScriptDirectory.from_config(make_config())
    shipped = load()
    if shipped.source == "manifest":
        missing = [rev.filename for rev in shipped.revisions
                   if not os.path.isfile(os.path.join(directory.versions, rev.filename))]
        if missing:
            from ..errors import MigrateError

            raise MigrateError(
                f"the install of {PACKAGE} is damaged: {len(missing)} revision script(s) it shipped are "
                f"missing, e.g. {missing[0]}; nothing was run; reinstall {PACKAGE}"
            )
    return directory
