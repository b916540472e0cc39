"""The package version, from the one place it is written (``recipe/recipe.yaml``)."""

from __future__ import annotations

import functools

from .identity import DISTRIBUTION, PACKAGE_DIR


@functools.cache
def package_version() -> str:
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
