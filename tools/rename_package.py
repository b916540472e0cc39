#!/usr/bin/env python3
"""Rename this project's package for your own schema: ``python tools/rename_package.py acme``.

Run from the source root, in a fresh copy of the project. It moves the package folder
``mypkg/`` to ``acme/`` and replaces the name in every text file (``mypkg`` -> ``acme``,
``MYPKG`` -> ``ACME``). The machinery derives every other name from the package's
(:mod:`mypkg.migrate.identity`): the command becomes ``acme-migrate``, the variable
``ACME_DATABASE_URL``, the ledger table ``acme_migration_ledger``, the default database
``acme.db``, and the PostgreSQL lock key follows the command name.

With ``--fresh-history`` it also clears what belongs to this project's history, which an
adopter replaces (a real adoption tripped on each): the revision scripts under
``alembic/versions/``, the release map (``releases.py``: the build checks that the version
being built maps to the head), the accepted lint findings of those revisions
(``alembic/lint.toml``'s ``[[ignore]]``; its ``disable`` stays) and ``alembic/released.json``.
The naming convention (``naming.py``) stays: keep it if your schema is new; if your database
already exists, set it to the names your constraints have.

Standard library only; nothing outside the source root is touched.
"""

from __future__ import annotations

import argparse
import keyword
import sys
from pathlib import Path

OLD = "mypkg"
#: Never rewritten: version control, environments, build output, databases.
SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", "build", "dist", "output", "node_modules"}


def rename(root: Path, new: str) -> list[Path]:
    """Rename the package under ``root`` to ``new``; returns the files rewritten."""
    if not new.isidentifier() or keyword.iskeyword(new) or new.lower() != new:
        raise ValueError(f"{new!r} is not a lower-case Python package name")
    if not (root / OLD / "__init__.py").is_file():
        raise FileNotFoundError(f"{root / OLD} is not the package folder (already renamed?)")
    rewritten = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary: nothing to rename in it
        changed = text.replace(OLD, new).replace(OLD.upper(), new.upper())
        if changed != text:
            path.write_text(changed, encoding="utf-8")
            rewritten.append(path)
    (root / OLD).rename(root / new)
    return rewritten


def clear_history(root: Path, package: str) -> list[Path]:
    """Remove this project's revisions and what names them; returns what was changed."""
    import re

    changed = []
    for script in sorted((root / "alembic" / "versions").rglob("*.py")):
        script.unlink()
        changed.append(script)
    releases = root / package / "releases.py"
    text = releases.read_text(encoding="utf-8")
    emptied = re.sub(r"RELEASES: dict\[str, str\] = \{[^}]*\}", "RELEASES: dict[str, str] = {}", text)
    if emptied != text:
        releases.write_text(emptied, encoding="utf-8")
        changed.append(releases)
    lint = root / "alembic" / "lint.toml"
    if lint.is_file():
        text = lint.read_text(encoding="utf-8")
        kept = text.split("[[ignore]]", 1)[0].rstrip() + "\n"
        if kept != text:
            lint.write_text(kept, encoding="utf-8")
            changed.append(lint)
    released = root / "alembic" / "released.json"
    if released.is_file():
        released.unlink()
        changed.append(released)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the new package name (lower case, a Python identifier)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the source root (default: .)")
    parser.add_argument("--fresh-history", action="store_true",
                        help="also remove this project's revisions, release map and accepted lint findings")
    args = parser.parse_args(argv)
    try:
        files = rename(args.root, args.name)
    except (ValueError, FileNotFoundError) as exc:
        print(f"rename_package: error: {exc}", file=sys.stderr)
        return 2
    print(f"renamed {OLD} to {args.name}: {len(files)} file(s) rewritten, {OLD}/ moved to {args.name}/")
    if args.fresh_history:
        cleared = clear_history(args.root, args.name)
        print(f"cleared the history: {len(cleared)} file(s) removed or emptied; write your first revision "
              f"with: alembic revision --autogenerate -m 'initial schema'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
