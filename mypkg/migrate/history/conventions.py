"""The models' naming convention, read from their source without importing them.

``alembic`` names the constraints a script leaves unnamed from the models' MetaData;
the runner, which does not import the ORM (a sizeable part of every start), from
``naming.py``. :func:`..runtime.environment.require_one_convention` refuses models of
another convention where the models are imported (``alembic``, ``verify``, ``check``);
this refuses them where they are not (``upgrade``, ``downgrade``), so that no command
builds a database the others then reject. Read with :mod:`ast`: every ``MetaData(...)``
call in the models package, its ``naming_convention`` a dict literal (compared) or the
name ``NAMING_CONVENTION`` (the one source); anything else cannot be told from the text,
and is left to the commands that import the models.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

from ..errors import MigrateError
from ..identity import COMMAND, PACKAGE, PACKAGE_DIR

#: SQLAlchemy's own convention, for a MetaData given none.
_DEFAULT = {"ix": "ix_%(column_0_label)s"}


def require_models_convention(expected: dict[str, str]) -> None:
    """:raises MigrateError: a ``MetaData`` of the models names constraints otherwise than
    ``expected`` (``naming.py``'s, handed in by a layer that may import it)."""
    differ = models_convention_differs(Path(PACKAGE_DIR) / "models", tuple(sorted(expected.items())))
    if differ:
        raise MigrateError(mismatch_message(differ))


def mismatch_message(differ: Iterable[str]) -> str:
    return (f"the models' MetaData names constraints by another convention than {PACKAGE}/naming.py "
            f"(differs in {', '.join(map(str, differ))}): {COMMAND} and alembic would build different "
            f"constraint names; give the models' MetaData naming_convention=NAMING_CONVENTION from "
            f"{PACKAGE}.naming (the one source)")


@functools.cache
def models_convention_differs(models: Path, expected: tuple[tuple[str, str], ...]) -> tuple[str, ...] | None:
    """The keys where a ``MetaData`` of the models under ``models`` names constraints
    otherwise than ``expected``; None when every one it can read agrees."""
    want = dict(expected)
    for path in sorted(models.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue  # importing it would fail louder, in the commands that do
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _name(node.func) != "MetaData":
                continue
            given = next((k.value for k in node.keywords if k.arg == "naming_convention"), None)
            found = _DEFAULT if given is None else _convention(given, want)
            if found is None:
                continue  # built in code: the commands that import the models tell
            differ = tuple(sorted(k for k in set(want) | set(found) if want.get(k) != found.get(k)))
            if differ:
                return differ
    return None


def _convention(node: ast.AST, source: dict[str, str]) -> dict[str, str] | None:
    """The convention an expression spells: the name ``NAMING_CONVENTION`` (``source``), a
    dict literal, or one unpacking it (``{**NAMING_CONVENTION, "uq": ...}``); None otherwise."""
    if _name(node) == "NAMING_CONVENTION":
        return dict(source)
    if not isinstance(node, ast.Dict):
        return None
    found: dict[str, str] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:
            unpacked = _convention(value, source)
            if unpacked is None:
                return None
            found.update(unpacked)
            continue
        try:
            found[ast.literal_eval(key)] = ast.literal_eval(value)
        except ValueError:
            return None
    return found


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None
