"""The package version, from the one place it is written (``recipe/recipe.yaml``)."""

from __future__ import annotations

import functools

from .identity import DISTRIBUTION, PACKAGE_DIR


@functools.cache
def package_version() -> str:
    found = _from_dist_info()
    if found is not None:
        return found
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a bare source tree, never installed
        import re
        from pathlib import Path

        recipe = Path(PACKAGE_DIR).resolve().parent / "recipe" / "recipe.yaml"
        try:
            found = re.search(r'(?m)^  version: "([^"]+)"', recipe.read_text())
        except OSError:  # a copy of the package alone, neither installed nor in its checkout
            found = None
        return found.group(1) if found else "0+unknown"


def _from_dist_info() -> str | None:
    """The installed version from the name of its ``.dist-info`` folder, found on ``sys.path``
    as importlib.metadata finds it (the first entry holding one), without importing it (the
    ledger row of a new tenant's install through the fast path needs the version; the
    import costs more than that install). None: none found, or several in one entry."""
    import os
    import sys

    def normal(name: str) -> str:
        return name.replace("-", "_").replace(".", "_").lower()

    wanted = normal(DISTRIBUTION)
    for entry in sys.path:
        try:
            found = [version for name, _, version in (n[:-len(".dist-info")].partition("-")
                                                      for n in os.listdir(entry or ".") if n.endswith(".dist-info"))
                     if normal(name) == wanted]
        except OSError:
            continue
        if found:
            return found[0] if len(found) == 1 else None
    return None
