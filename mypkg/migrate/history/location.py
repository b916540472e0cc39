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


def not_a_checkout(what: str) -> str:
    """Why a command that edits the source tree cannot: the package imported is an installed
    one; when the working directory is a checkout, say that its package is not the one imported."""
    from ..identity import COMMAND, PACKAGE_DIR

    here = Path.cwd()
    if (here / "alembic" / "versions").is_dir() and (here / PACKAGE).is_dir():
        return (f"{COMMAND} {what} the source tree's alembic/ folder, but the {PACKAGE} imported is the installed "
                f"package at {PACKAGE_DIR}, not this checkout's: install the checkout editable (pip install -e .) "
                f"or run python -m {PACKAGE} from its root")
    return (f"{COMMAND} {what} the source tree's alembic/ folder: run it in a checkout "
            f"(the {PACKAGE} imported is the installed package at {PACKAGE_DIR}, whose checkpoints come with it)")
