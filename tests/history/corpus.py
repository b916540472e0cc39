"""A corpus of public Alembic histories, from the wheels their projects publish on PyPI.

Each history is pinned by its distribution's version and the wheel's sha256, downloaded
once into ``~/.cache/mypkg/corpus`` (``$MYPKG_CORPUS_CACHE``) and never vendored. A history
is *adopted* the documented way (docs/layout.md, "Adopting"): a copy of this checkout,
``tools/rename_package.py NAME --fresh-history``, the naming convention set to the one the
history's own models use, and its scripts in ``alembic/versions/`` (replacing the shipped
history). What each adoption needed beyond that is said in its ``adoption`` line
(docs/corpus.md lists them).

Used by ``benchmarks/corpus.py`` (the whole corpus, every capability, the table in
docs/corpus.md) and by ``tests/history/test_corpus.py`` (the small histories, in CI).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

from tests.conftest import REPO

#: SQLAlchemy's own convention: what a history's models use when they name none.
SQLALCHEMY_DEFAULT = {"ix": "ix_%(column_0_label)s"}
#: prefect/server/database/orm_models.py's (3.9.1).
PREFECT = {"ix": "ix_%(table_name)s__%(column_0_N_name)s", "uq": "uq_%(table_name)s__%(column_0_N_name)s",
           "ck": "ck_%(table_name)s__%(constraint_name)s",
           "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s", "pk": "pk_%(table_name)s"}
#: jupyterhub/orm.py's (6.1.1).
JUPYTERHUB = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
              "ck": "ck_%(table_name)s_%(constraint_name)s",
              "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}


class History(NamedTuple):
    name: str  #: how the table names it
    distribution: str
    version: str
    wheel: str  #: the file pip downloads
    sha256: str  #: of that file
    folder: str  #: the folder holding ``versions/`` inside the wheel
    package: str  #: the adopted package's name (an identifier)
    #: The naming convention of the history's own models (its ``target_metadata``).
    convention: dict[str, str]
    #: The application its scripts import (``from jupyterhub import orm``), a pip requirement;
    #: None: they import alembic and SQLAlchemy alone.
    application: str | None = None
    #: Where its project runs it.
    dialects: tuple[str, ...] = ("sqlite", "postgresql")
    #: What adopting it needed beyond the documented steps.
    adoption: str = "nothing beyond the documented steps"
    #: The findings of roundtrip and lint on it, each judged true or false (and why).
    judged: str = ""
    #: A history of its own under ``versions/`` (prefect keeps one per dialect).
    subfolder: str = ""
    #: The PostgreSQL driver its project runs (gnocchi's JSON columns take text parameters
    #: only as psycopg2 binds them, client-side).
    driver: str = "psycopg"


CORPUS: tuple[History, ...] = (
    History("aim (web)", "aim", "3.29.1", "aim-3.29.1-cp311-cp311-manylinux_2_28_x86_64.whl",
            "350e640c3c6bc532e0ad6d5cf6479f82f309a38bf05f84d30947d00a36f94523", "aim/web/migrations",
            "aimweb", SQLALCHEMY_DEFAULT, dialects=("sqlite",),
            adoption="its convention is SQLAlchemy's default (ix only): naming.py set to it",
            judged="roundtrip: 6 true (73a3d004c227 drops six tables; its downgrade makes them again, empty: "
                   "their rows cannot come back); lint: true (its tables' constraints are unnamed, it drops tables)"),
    History("aim (storage)", "aim", "3.29.1", "aim-3.29.1-cp311-cp311-manylinux_2_28_x86_64.whl",
            "350e640c3c6bc532e0ad6d5cf6479f82f309a38bf05f84d30947d00a36f94523", "aim/storage/migrations",
            "aimstorage", SQLALCHEMY_DEFAULT, dialects=("sqlite",),
            adoption="its convention is SQLAlchemy's default (ix only): naming.py set to it",
            judged="roundtrip: 1 true (46b89d830ad8's downgrade alters a constraint outside batch mode, which SQLite "
                   'cannot: its own downgrade fails, under alembic too); lint: true, its does-not-run included (that '
                   "downgrade drops a foreign key it never named); plugin: its table note has a core table's name, and a"
                   " plugin shares the core's database: true, the history's own as a plugin"),
    History("buildbot", "buildbot", "4.3.0", "buildbot-4.3.0-py3-none-any.whl",
            "5cd502825b1bbacda2ac0b24e6da5107dbbc2c54f80cd53100f85a5b2e30c400", "buildbot/db/migrations",
            "bbcorpus", SQLALCHEMY_DEFAULT, application="buildbot==4.3.0",
            dialects=("sqlite", "postgresql", "mysql"),
            judged="upgrade: the history's own: it starts from a database buildbot builds itself and stamps "
                   "at 059; from an empty one no tool can run 060 (no builders table)"),
    History("jupyterhub", "jupyterhub", "6.1.1", "jupyterhub-6.1.1-py3-none-any.whl",
            "ae20ed7b3d7cef1dd5d51e28723fd53853d69f732e7a9e84a73136acab454248", "jupyterhub/alembic",
            "jhcorpus", JUPYTERHUB, application="jupyterhub==6.1.1",
            dialects=("sqlite", "postgresql", "mysql"),
            adoption="naming.py set to jupyterhub/orm.py's convention",
            judged="upgrade: the history's own: its base revision expects the tables jupyterhub's create_all "
                   "makes; from an empty database no tool can run eeb276e51423 (no users table)"),
    History("gnocchi", "gnocchi", "4.7.1", "gnocchi-4.7.1-py3-none-any.whl",
            "8ec5c64d7eeec1ccd2b36e48bffbd80fdaf9a99035d6916eaf61f8daa8ed88a3", "gnocchi/indexer/alembic",
            "gnocorpus", SQLALCHEMY_DEFAULT, application="gnocchi[postgresql]==4.7.1", dialects=("postgresql", "mysql"),
            driver="psycopg2",
            adoption="its scripts import sqlalchemy_utils: the application installed with its postgresql extra",
            judged="works on PostgreSQL with psycopg2, its project's driver (under psycopg 3 both tools fail alike at "
                   '8f376189b9eb: a json column fed a text parameter), and on MariaDB. Found OUR defects, fixed: its '
                   "head revision defines no downgrade() (lint failed whole, downgrade said 'no revision is there'); "
                   "34c517bcc2dd grows a module-level list while it runs (a fleet worker's second tenant failed)"
                   "; as a plugin (its NAMING_CONVENTION declared): found OUR defect, fixed (a plugin's revisions were named by the core's convention); its downgrade to base stops in its own head, which defines none"),
    History("ckan", "ckan", "2.12.0", "ckan-2.12.0-py3-none-any.whl",
            "3b41cb4860286813fbcd18c57341e96edba266e2e492aeea92c4e03ce9e2934e", "ckan/migration",
            "ckancorpus", SQLALCHEMY_DEFAULT, application="ckan==2.12.0", dialects=("postgresql",),
            judged="upgrade on PostgreSQL: works, pg_dump-identical to alembic's; --schema and a fleet of 20 schemas "
                   'work; lint: data-with-ddl, empty-downgrade, unnamed-constraint true, as its scripts show; its '
                   "does-not-run is true: fd6622e3d964's downgrade declares harvested_document.created twice, which "
                   'SQLAlchemy 2 refuses (DuplicateColumnError) before any database; its note, f98d8fa2a7f7, reads the '
                   'database'
                   "; as a plugin, its downgrade to base stops in fd6622e3d964's own DuplicateColumnError"),
    History("dagster", "dagster", "1.13.29", "dagster-1.13.29-py3-none-any.whl",
            "65f7bf2f52c0c1219cb1ca63a1f0f95a1af83d12e94ebec7598e47ee49889859", "dagster/_core/storage/alembic",
            "dagcorpus", SQLALCHEMY_DEFAULT, application="dagster==1.13.29",
            dialects=("sqlite", "postgresql", "mysql"),
            judged="upgrade: its revisions need the dagster instance that `dagster instance migrate` sets; both "
                   "tools fail without it alike; an adoption must set it in env.py (not done yet)"),
    History("prefect (sqlite)", "prefect", "3.9.1", "prefect-3.9.1-py3-none-any.whl",
            "0c662e26e971b617993eed1f3d02fb8bc3c2dd47bee521b495f6e4dfeb38ae74",
            "prefect/server/database/_migrations", "prefsqlite", PREFECT,
            application="prefect==3.9.1", dialects=("sqlite",), subfolder="sqlite",
            adoption="one of two histories (versions/sqlite); naming.py set to orm_models.py's convention "
                     "(column_0_N_name tokens)",
            judged='upgrade, down and up, checkpoint: work. Roundtrip found OUR defects, fixed: after a revision failing'
                   ' with its cursor open (b75d279ba985) SQLite stayed locked and the walk stopped at 13 of 115; a table'
                   ' with two keys to one parent under a no-self-reference CHECK got no rows. Its findings, judged by '
                   "each one's example: upgrades failing with rows present, true (NOT NULL columns added without a "
                   'default: c8ff35f94028, b9bda9f142f1, 2b6c2b548f95, 354f1ede7e9f; b75d279ba985 again after its own '
                   "downgrade emptied block_schema.name) but 35659cc49969 and 1678f2fb8b33's downgrade, false (generated"
                   " keys name no flow run or pool: an invariant prefect's application keeps, which no generator can "
                   'know before the foreign key exists); downgrades that cannot bring data back, true (b75d279ba985, '
                   '33439667aeea, 42762c37b7bc, 2fe8ef6a6514, a49711513ad4, f92143d30c27, 9e83011d1f2a, bb38729c471a, '
                   'bfe42b7090d6, 7655f31c5157); data changed on purpose, true changes prefect means (e73c6f1fe752 and '
                   'f335f9633eec recompute checksums, 88c2112b668f, 22ef3915ccd8, 8167af8df781, f92143d30c26, '
                   '2095de406cbe drops invalid references), which an adopter declares with roundtrip_changes; lint: '
                   'data-with-ddl and empty-downgrade true (data migrations inside schema changes, downgrades that pass)'),
    History("prefect (postgresql)", "prefect", "3.9.1", "prefect-3.9.1-py3-none-any.whl",
            "0c662e26e971b617993eed1f3d02fb8bc3c2dd47bee521b495f6e4dfeb38ae74",
            "prefect/server/database/_migrations", "prefpg", PREFECT,
            application="prefect==3.9.1", dialects=("postgresql",), subfolder="postgresql",
            adoption="one of two histories (versions/postgresql); naming.py set to orm_models.py's "
                     "convention (column_0_N_name tokens)",
            driver="asyncpg",
            judged="found OUR limit, lifted: it runs through asyncpg, its project's driver (c8d5f2a71b3e's raw "
                   "SQL holds format('%I.%I'), a placeholder to every sync driver, psycopg 3 and psycopg2 alike); "
                   "postgresql+asyncpg:// URLs now work, through SQLAlchemy's greenlet bridge"
                   '; fleets on that URL found OUR defect, fixed (the schema listing and bulk read ran outside the bridge). '
                   'Tenants found OUR defect, fixed: 77ebcc9cf355 creates pg_trgm IF NOT EXISTS; the first tenant '
                   'got it in its own schema and later tenants, their schema alone on the path, could not see its '
                   'gin_trgm_ops; a tenant\'s CREATE EXTENSION now goes to the shared extensions schema, on every '
                   'tenant\'s path after its own'),
    History("zenml", "zenml", "0.98.0", "zenml-0.98.0-py3-none-any.whl",
            "801ffbe1821bd48dfc03c9fd5519f5a7d4387d86b3d48d08bd2057dfcde5ad30", "zenml/zen_stores/migrations",
            "zencorpus", SQLALCHEMY_DEFAULT, application="zenml[server]==0.98.0", dialects=("sqlite", "mysql"),
            adoption="its scripts import sqlmodel: the application installed with its server extra",
            judged='found OUR defects, fixed: the package required alembic>=1.16.3 where zenml pins <=1.15.2 (the '
                   'runtime floor is 1.12, measured); its first revision reads through a second connection of the '
                   'engine, which our BEGIN IMMEDIATE kept waiting out the busy timeout; its logging to stdout broke '
                   "--json. Then both tools fail alike: on SQLite at 728c6369cfaa ('Unsupported engine: sqlite': zenml "
                   'makes new SQLite databases with create_all and stamps them), on MariaDB at 41b28cae31ce (it needs '
                   "the default workspace zenml's server creates at start)"),
    History("neutron", "neutron", "29.0.0", "neutron-29.0.0-py3-none-any.whl",
            "6e998e2e55d233ff757f3ae1d53dd8dfd2cb455a01868e494c22fd6b8b0aba36",
            "neutron/db/migration/alembic_migrations", "neucorpus", SQLALCHEMY_DEFAULT,
            application="neutron==29.0.0", dialects=("mysql", "postgresql"),
            judged="found OUR defects, fixed: the manifest refused `branch_labels = (cli.CONTRACT_BRANCH,)` (it "
                   "reads such constants from their module's source now); lint failed whole on readers in both "
                   "the expand and contract branches. On MariaDB, its database: works, both heads. On PostgreSQL "
                   "both tools fail alike at d553edeb540f (MySQL's CONVERT). Lint: its 130 does-not-run downgrades "
                   "are true (neutron defines no downgrade since Mitaka); 2b42d90729da's upgrade one is false "
                   "(neutron's remove_fks_from_table reads the database in its own helper; it runs on MariaDB). "
                   "Deploy phases: its expand/contract labels are the phases (114 pre, 19 post), nothing declared; "
                   "from before its newest contract revision, --phase pre then --phase post build alembic's schema. "
                   "From kilo the pre phase is refused, rightly: ussuri's expand revisions depend_on newton's "
                   "contract 7d9d8eeec6ad (neutron deploys one release at a time)"),
)


def by_name(name: str) -> History:
    return next(history for history in CORPUS if history.name == name)


def cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mypkg" / "corpus"
    return Path(os.environ.get("MYPKG_CORPUS_CACHE", default))


class CorpusError(RuntimeError):
    """A wheel that cannot be had, or is not the one pinned."""


def fetch(history: History) -> Path:
    """The pinned wheel, from the cache or downloaded once (``pip download``, no
    dependencies), its sha256 checked either way.

    :raises CorpusError: the download failed, or the file is not the one pinned (then it is
        removed from the cache).
    """
    folder = cache()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / history.wheel
    if not path.is_file():
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                               "--dest", str(folder), f"{history.distribution}=={history.version}"],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not path.is_file():
            said = [line for line in done.stderr.splitlines() if "is ignored" not in line]
            raise CorpusError(f"{history.name}: {history.wheel} could not be downloaded: {(said or ['?'])[-1]}")
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != history.sha256:
        path.unlink()
        raise CorpusError(f"{history.name}: {history.wheel} has sha256 {found}, pinned {history.sha256}: removed")
    return path


def scripts(history: History) -> dict[str, bytes]:
    """The history's revision scripts, by their path under ``versions/`` (subfolders kept)."""
    prefix = f"{history.folder}/versions/" + (f"{history.subfolder}/" if history.subfolder else "")
    with zipfile.ZipFile(fetch(history)) as wheel:
        return {name[len(prefix):]: wheel.read(name) for name in wheel.namelist()
                if name.startswith(prefix) and name.endswith(".py") and not name.endswith("__init__.py")}


#: What an adoption copies of this checkout: the package, the Alembic set-up, the tools.
_PARTS = ("mypkg", "alembic", "alembic.ini", "tools", "pyproject.toml", "hatch_build.py", "recipe", "README.md",
          "LICENSE")


def adopt(history: History, root: Path) -> Path:
    """A checkout adopting ``history`` at ``root``, the documented way; returns ``root``."""
    root.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db")
    for part in _PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=ignore)
        else:
            shutil.copy(source, root / part)
    done = subprocess.run([sys.executable, "tools/rename_package.py", history.package, "--fresh-history"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise CorpusError(f"{history.name}: rename_package failed: {done.stderr.strip()[-300:]}")
    (root / history.package / "naming.py").write_text(
        f'"""The naming convention of {history.name}\'s own models."""\n\nNAMING_CONVENTION = {history.convention!r}\n')
    versions = root / "alembic" / "versions"
    for relative, text in scripts(history).items():
        path = versions / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
    return root


def environment(history: History, root: Path, **extra: str) -> dict[str, str]:
    """The adopted checkout's environment: its package first on the path, no variable of
    this project's or the adopted one's left from outside."""
    prefix = history.package.upper() + "_"
    # Bytecode written and read as in a user's checkout: without it every run compiles every
    # script again (the runner's and alembic's seconds alike).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MYPKG_", prefix)) and k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(root), **extra}


def alembic(history: History, root: Path, url: str, *args: str, python: str = sys.executable,
            ) -> subprocess.CompletedProcess[str]:
    """Plain ``alembic`` in the adopted checkout (its alembic.ini, its env.py), on ``url``;
    ``python``: an interpreter whose environment holds the history's application."""
    env = environment(history, root, **{f"{history.package.upper()}_DATABASE_URL": url})
    return subprocess.run([python, "-m", "alembic", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)


def migrate(history: History, root: Path, url: str, *args: str, python: str = sys.executable,
            ) -> subprocess.CompletedProcess[str]:
    """The adopted package's ``NAME-migrate`` (``python -m NAME``) on ``url``."""
    return subprocess.run([python, "-m", history.package, "--url", url, *args], cwd=root,
                          env=environment(history, root), capture_output=True, text=True, timeout=900)


def application_venv(history: History) -> str:
    """The interpreter of a venv (cached beside the wheels) holding the history's
    application at its pinned release, with its own dependencies, as its users install it,
    and this package's runtime dependencies; ``sys.executable`` when it imports none.

    :raises CorpusError: the application cannot be installed (its pins against ours, say).
    """
    if history.application is None:
        return sys.executable
    venv = cache() / f"venv-{history.distribution}-{history.version}"
    python = venv / "bin" / "python"
    if not (venv / "ready").is_file() or (venv / "ready").read_text() != history.application:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        import tomllib

        ours = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", history.application, *ours,
                               "psycopg[binary]>=3.1.20,<4", "PyMySQL>=1.1,<2"],
                              capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            said = [line for line in done.stderr.splitlines() if line.strip() and "is ignored" not in line]
            raise CorpusError(f"{history.name}: pip install {history.application} beside this package's "
                              f"dependencies failed: {(said or ['?'])[-1][:300]}")
        (venv / "ready").write_text(history.application)
    return str(python)


def sqlite_schema(path: Path, history: History) -> list[tuple[str, ...]]:
    """What SQLite keeps of a schema (``sqlite_master``'s text, canonical), and the version
    rows; the runner's own tables aside."""
    import sqlite3

    from mypkg.migrate.checks.canonical import statement

    own = {f"{history.package}_migration_ledger", f"{history.package}_migration_lock", "sqlite_sequence"}
    with sqlite3.connect(path) as connection:
        # In a canonical form: batch mode writes a rebuilt table's constraints in set order.
        rows = sorted((t, n, tbl, statement(s or "")) for t, n, tbl, s in connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master") if tbl not in own)
        versions = [("version", row[0], "", "") for row in connection.execute("SELECT version_num FROM alembic_version")]
    return rows + sorted(versions)


def importable(history: History, python: str = sys.executable) -> bool:
    """Whether the application its scripts import is installed where ``python`` runs."""
    if history.application is None:
        return True
    module = history.distribution.replace("-", "_")
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=300).returncode == 0
