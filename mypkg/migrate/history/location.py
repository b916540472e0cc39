"""Where the migration scripts are, in a wheel, an editable install or a source tree.

The scripts are authored once, in ``alembic/`` at the source root. The wheel maps
that folder to ``mypkg/migrations`` (see pyproject.toml); an editable install or a
plain checkout imports ``mypkg`` from the source root, where ``alembic/`` sits
beside it. Both are located through :mod:`importlib.resources`, never through the
working directory.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from ..identity import BUNDLED_SCRIPTS as BUNDLED
from ..identity import PACKAGE


@functools.cache
def script_location() -> str:
    """The ``script_location`` for Alembic: ``mypkg:migrations`` when installed,
    else the absolute path of the source tree's ``alembic/`` folder."""
    package = files(PACKAGE)
    if package.joinpath(BUNDLED, "env.py").is_file():
        # Alembic resolves "package:folder" with importlib.resources itself.
        return f"{PACKAGE}:{BUNDLED}"
    source = Path(str(package)).parent / "alembic"
    if (source / "env.py").is_file():
        return str(source)
    raise FileNotFoundError(
        f"{PACKAGE}'s migration scripts are missing: neither {package}/{BUNDLED} "
        f"nor {source} holds env.py; reinstall {PACKAGE}"
    )
