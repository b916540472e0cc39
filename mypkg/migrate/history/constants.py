"""Revision headers that name a constant instead of spelling it, read without importing.

Real histories write ``branch_labels = (cli.CONTRACT_BRANCH,)`` (neutron: ``from
neutron.db.migration import cli``). Alembic takes it because it imports the script; the
manifest reads headers with :mod:`ast` and never imports a script (nor its application,
which a build environment does not hold). Such a name is resolved here from its module's
*source*, found on ``sys.path`` and read with :mod:`ast` too: a module-level assignment of
a literal (or of another such constant). Anything else stays unresolved (``ValueError``),
and the manifest says the header must be a literal.

Standard library only, like the manifest.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Sequence


def resolve(node: ast.expr, tree: ast.Module, path: Sequence[str] | None = None) -> object:
    """The value of the header expression ``node`` in the script ``tree``: literals, tuples
    and lists of them, and constants its imports name.

    :raises ValueError: anything it cannot resolve without running code.
    """
    imports = _imports(tree)
    search = list(sys.path if path is None else path)

    def value(item: ast.expr) -> object:
        if isinstance(item, ast.Constant):
            return item.value
        if isinstance(item, (ast.Tuple, ast.List)):
            return tuple(value(element) for element in item.elts)
        if isinstance(item, ast.Name) and item.id in imports:
            module, attribute = imports[item.id]
            if attribute is not None:
                return constant(module, attribute, search)
        if isinstance(item, ast.Attribute):
            dotted = _dotted(item.value)
            if dotted is not None and dotted.split(".")[0] in imports:
                head, *rest = dotted.split(".")
                module, attribute = imports[head]
                return constant(".".join([module, *([attribute] if attribute else []), *rest]), item.attr, search)
        raise ValueError(ast.dump(item))

    return value(node)


def constant(module: str, name: str, search: Sequence[str], depth: int = 0) -> object:
    """The literal ``module.name`` is assigned at its module's top level, from the source.

    :raises ValueError: no such module source on ``search``, or no literal assignment.
    """
    if depth > 5:
        raise ValueError(f"{module}.{name}: too many indirections")
    source = _source(module, search)
    if source is None:
        raise ValueError(f"{module}: no source on the path")
    with open(source, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=source)
    found: ast.expr | None = None
    for statement in tree.body:  # the last assignment wins, as when the module runs
        if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name
                                                     for t in statement.targets):
            found = statement.value
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) \
                and statement.target.id == name and statement.value is not None:
            found = statement.value
    if found is None:
        raise ValueError(f"{module}.{name}: not assigned at the top of its module")
    try:
        return ast.literal_eval(found)
    except ValueError:
        pass
    if isinstance(found, ast.Name):  # NAME = OTHER_NAME of the same module
        return constant(module, found.id, search, depth + 1)
    if isinstance(found, (ast.Tuple, ast.List)):
        return tuple(constant(module, e.id, search, depth + 1) if isinstance(e, ast.Name) else ast.literal_eval(e)
                     for e in found.elts)
    raise ValueError(f"{module}.{name}: not a literal")


def _imports(tree: ast.Module) -> dict[str, tuple[str, str | None]]:
    """Local name -> (module, attribute), from the script's top-level absolute imports."""
    found: dict[str, tuple[str, str | None]] = {}
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
            for alias in statement.names:
                found[alias.asname or alias.name] = (statement.module, alias.name)
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname:
                    found[alias.asname] = (alias.name, None)
                else:
                    found[alias.name.split(".")[0]] = (alias.name.split(".")[0], None)
    return found


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def _source(module: str, search: Sequence[str]) -> str | None:
    parts = module.split(".")
    for entry in search:
        base = os.path.join(entry or ".", *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None
