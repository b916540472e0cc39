"""Plugin packages bring their own migrations (docs/plugins.md).

The world: the two example plugins of examples/plugins (tagging builds on audit-trail, which
builds on the core) built as wheels by hatchling with the package's build hook, and
installed with pip beside mypkg's own wheel into a fresh virtual environment. The venv gets
the suite's third-party libraries (alembic, SQLAlchemy, psycopg) through a ``.pth`` line
rather than a download; mypkg and the plugins are its own installs, found as any user's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.migrate.history import manifest
from tests.conftest import REPO, scratch
from tests.fast.test_fastpath import HEAVY_MODULES, imported_by_fast_path

EXAMPLES = REPO / "examples" / "plugins"
CORE_HEAD = mypkg.heads()[0]
AUDIT = ("a0d17e000001", "a0d17e000002")
TAGS = ("7a9500000001",)


def build_wheel(source: Path, out: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps",
                           "--wheel-dir", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    name = source.name
    return max(out.glob(f"{name}-*.whl"), key=lambda p: p.stat().st_mtime)


def plugin_copy(tmp: Path, name: str, **replace: str) -> Path:
    """A copy of an example plugin with some text replaced in every file (a new version...)."""
    root = tmp / f"{name}-{len(list(tmp.iterdir()))}" / name
    shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for old, new in replace.items():
                text = text.replace(old, new)
            path.write_text(text)
    return root


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = str(root / "bin" / "python")
        self.command = str(root / "bin" / "mypkg-migrate")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG") and k != "PYTHONPATH"}

    def pip(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "pip", "--python", self.python, *args, "--quiet"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr

    def install(self, *wheels: Path) -> None:
        self.pip("install", "--no-index", "--no-deps", "--force-reinstall", *map(str, wheels))

    def run(self, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.command, *args], cwd=cwd, env={**self.env, **env},
                              capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def wheels(mypkg_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    with scratch(tmp_path_factory, "plugin-wheels") as out:
        yield {"mypkg": mypkg_wheel, "audit": build_wheel(EXAMPLES / "audit_trail", out),
               "tags": build_wheel(EXAMPLES / "tagging", out)}


@pytest.fixture(scope="module")
def venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    with scratch(tmp_path_factory, "plugin-venv") as root:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
        env = Venv(root)
        env.install(wheels["mypkg"], wheels["audit"], wheels["tags"])
        site = subprocess.run([env.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        # After the venv's own site-packages: its mypkg wins over the suite's editable one.
        Path(site, "suite_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        yield env


@pytest.fixture
def plugins_installed(venv: Venv, wheels: dict[str, Path]) -> Iterator[Venv]:
    """Both plugins installed, as the module's venv had them, whatever a test did."""
    yield venv
    venv.install(wheels["audit"], wheels["tags"])


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_plugins_migrate_with_the_core_and_come_off_one_by_one(
    plugins_installed: Venv, dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    venv, url = plugins_installed, request.getfixturevalue(f"{dialect}_url")
    up = venv.run("--url", url, "upgrade", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert f"applied  {AUDIT[0]}  create audit_event  [audit]" in up.stdout
    assert f"applied  {TAGS[0]}  create event_tag  [tags]" in up.stdout
    assert {"my_table", "note", "audit_event", "event_tag"} <= tables(url)
    status = venv.run("--url", url, "status", "--json", cwd=tmp_path, MYPKG_NO_FASTPATH="1")
    assert status.returncode == 0, status.stderr
    full = json.loads(status.stdout)
    assert sorted(full["heads"]) == sorted([CORE_HEAD, AUDIT[-1], TAGS[-1]])
    assert {rev["revision"]: rev["plugin"] for rev in full["applied"] if rev["plugin"]} == {
        AUDIT[0]: "audit", AUDIT[1]: "audit", TAGS[0]: "tags"}
    # The fast path's answer is the full path's, plugins and all, and it stays fast.
    assert json.loads(venv.run("--url", url, "status", "--json", cwd=tmp_path).stdout) == full
    assert imported_by_fast_path(venv.python, url, "upgrade", HEAVY_MODULES, env=venv.env, cwd=tmp_path) == []
    ledger = json.loads(venv.run("--url", url, "history", "--applied", "--json", cwd=tmp_path).stdout)["rows"]
    assert {(row["revision"], row["plugin"], row["package_version"]) for row in ledger if row["plugin"]} == {
        (AUDIT[0], "audit", "1.0.0"), (AUDIT[1], "audit", "1.0.0"), (TAGS[0], "tags", "1.0.0")}
    assert all(row["package_version"] == mypkg.__version__ for row in ledger if not row["plugin"])
    verified = venv.run("--url", url, "verify", cwd=tmp_path)
    assert verified.returncode == 0 and "every applied revision matches" in verified.stdout

    # One step back from three heads means nothing in particular: refused (Alembic would
    # only warn, and take every branch down to base).
    ambiguous = venv.run("--url", url, "downgrade", "-1", cwd=tmp_path)
    assert ambiguous.returncode == 2 and "NAME@-1 (NAME: audit, tags)" in ambiguous.stderr
    current = venv.run("--url", url, "current", cwd=tmp_path).stdout
    assert f"{TAGS[0]} (head)  create event_tag  [tags]" in current and CORE_HEAD in current
    # audit's tables cannot go while tags builds on them: refused, nothing run.
    refused = venv.run("--url", url, "downgrade", "audit@base", "--yes", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"mypkg-migrate: error: tags builds on plugin audit ({TAGS[0]} is applied here), so audit's tables cannot "
        "go first; nothing was run: take mypkg-migrate downgrade tags@base --yes first"]
    assert "event_tag" in tables(url)
    unconfirmed = venv.run("--url", url, "downgrade", "tags@base", cwd=tmp_path)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    down = venv.run("--url", url, "downgrade", "tags@base", "--yes", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert f"reverted {TAGS[0]}  create event_tag  [tags]" in down.stdout
    assert "event_tag" not in tables(url) and "audit_event" in tables(url)
    venv.pip("uninstall", "--yes", "tagging")
    assert venv.run("--url", url, "status", cwd=tmp_path).returncode == 0
    # And the other one, down to the core alone.
    assert venv.run("--url", url, "downgrade", "audit@base", "--yes", cwd=tmp_path).returncode == 0
    venv.pip("uninstall", "--yes", "audit-trail")
    assert tables(url) - {"alembic_version", "mypkg_migration_ledger"} == {"my_table", "note"}
    final = venv.run("--url", url, "status", "--json", cwd=tmp_path)
    assert final.returncode == 0 and json.loads(final.stdout)["heads"] == [CORE_HEAD]


def versions(url: str) -> list[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            return sorted(row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_plugin_uninstalled_with_its_tables_left_is_named_with_the_way_out(
    plugins_installed: Venv, wheels: dict[str, Path], dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    venv, url = plugins_installed, request.getfixturevalue(f"{dialect}_url")
    assert venv.run("--url", url, "upgrade", cwd=tmp_path).returncode == 0
    venv.pip("uninstall", "--yes", "tagging")
    for args in (["status"], ["upgrade"], ["downgrade", "-1"]):
        found = venv.run("--url", url, *args, cwd=tmp_path)
        assert found.returncode == 1, (args, found.stdout)
        (line,) = found.stderr.strip().splitlines()
        assert line.startswith("mypkg-migrate: error: ") and line.endswith(
            f"holds the tables of plugin tags (at its revision {TAGS[0]}), which is not installed: reinstall it to "
            "migrate them; to remove them, reinstall it, run mypkg-migrate downgrade tags@base --yes, then uninstall it")
    assert "event_tag" in tables(url) and TAGS[0] in versions(url)
    venv.install(wheels["tags"])  # the way out it names
    assert venv.run("--url", url, "status", cwd=tmp_path).returncode == 0


def test_a_plugin_needing_a_newer_core_is_refused_before_anything_runs(
    plugins_installed: Venv, postgresql_url: str, tmp_path: Path
) -> None:
    """Refused before the database is even read: PostgreSQL, where a partial run would show."""
    venv, url = plugins_installed, postgresql_url
    assert venv.run("--url", url, "upgrade", "--only", "mypkg", cwd=tmp_path).returncode == 0
    before = versions(url)
    newer = plugin_copy(tmp_path, "audit_trail", **{'version = "1.0.0"': 'version = "2.0.0"',
                                                     '"4a14b7b9f9d6"': '"ffffffffffff"'})
    venv.install(build_wheel(newer, tmp_path / "dist"))
    for args in (["upgrade"], ["status"], ["history"]):
        refused = venv.run("--url", url, *args, cwd=tmp_path)
        assert refused.returncode == 1, args
        assert refused.stderr.strip().splitlines() == [
            f"mypkg-migrate: error: plugin audit needs mypkg with revision ffffffffffff; this mypkg "
            f"({mypkg.__version__}) ships up to {CORE_HEAD}: upgrade mypkg, or install the plugin that ships ffffffffffff"]
    assert versions(url) == before == [CORE_HEAD] and "audit_event" not in tables(url)


def test_verify_and_lint_read_the_installed_plugins_scripts(
    plugins_installed: Venv, sqlite_url: str, tmp_path: Path
) -> None:
    venv = plugins_installed
    assert venv.run("--url", sqlite_url, "upgrade", cwd=tmp_path).returncode == 0
    assert venv.run("lint", cwd=tmp_path).returncode == 0
    folder = subprocess.run([venv.python, "-c", "import audit_trail, os; print(os.path.dirname(audit_trail.__file__))"],
                            capture_output=True, text=True, env=venv.env, check=True).stdout.strip()
    (script,) = Path(folder, "versions").glob("*_a0d17e000002_add_actor.py")
    text = script.read_text()
    script.write_text(text[: text.index("def downgrade")] + "def downgrade() -> None:\n    pass\n")
    verified = venv.run("--url", sqlite_url, "verify", cwd=tmp_path)
    assert verified.returncode == 1
    assert f"{script.name} was changed after the package was built" in verified.stdout
    linted = venv.run("lint", "--json", cwd=tmp_path)
    assert linted.returncode == 1
    assert {(f["revision"], f["rule"]) for f in json.loads(linted.stdout)["findings"]} == {(AUDIT[1], "empty-downgrade")}


def test_only_and_without_choose_branches(plugins_installed: Venv, sqlite_url: str, tmp_path: Path) -> None:
    venv = plugins_installed
    only = venv.run("--url", sqlite_url, "upgrade", "--only", "audit", cwd=tmp_path)
    assert only.returncode == 0, only.stderr
    # audit's revisions and the core revision they depend on; nothing of tags, no later core one.
    assert [line.split()[1] for line in only.stdout.splitlines() if line.startswith("applied")] == [
        "4a14b7b9f9d6", *AUDIT]
    refused = venv.run("--url", sqlite_url, "upgrade", "--without", "audit", cwd=tmp_path)
    assert refused.returncode == 2
    assert "plugin tags builds on it; leave out tags too (--without tags)" in refused.stderr
    unknown = venv.run("--url", sqlite_url, "upgrade", "--only", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "installed: audit, tags" in unknown.stderr
    rest = venv.run("--url", sqlite_url, "upgrade", "--without", "tags", cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert "event_tag" not in tables(sqlite_url) and "note" in tables(sqlite_url)
    status = venv.run("--url", sqlite_url, "status", cwd=tmp_path)
    assert status.returncode == 1 and f"{TAGS[0]}  create event_tag  [tags]" in status.stdout
    # A fleet sees the plugins too: behind by tags, then brought to every head.
    glob = sqlite_url.removeprefix("sqlite:///")
    behind = venv.run("fleet", "status", "--sqlite-glob", glob, "--json", cwd=tmp_path)
    assert behind.returncode == 1 and json.loads(behind.stdout)["summary"]["behind"] == 1
    assert venv.run("fleet", "upgrade", "--sqlite-glob", glob, cwd=tmp_path).returncode == 0
    after = json.loads(venv.run("fleet", "status", "--sqlite-glob", glob, "--json", cwd=tmp_path).stdout)
    assert sorted(after["targets"][0]["after"]) == sorted([CORE_HEAD, AUDIT[-1], TAGS[-1]])


def test_entry_points_are_found_as_importlib_metadata_finds_them(plugins_installed: Venv) -> None:
    probe = (
        "import importlib.metadata as m, json\n"
        "from mypkg.migrate.history import plugins\n"
        "ours = sorted((n, v, d.replace('_', '-')) for n, v, d, _ in plugins.entry_points())\n"
        "theirs = sorted((e.name, e.value, e.dist.name) for e in m.entry_points(group='mypkg.migrations'))\n"
        "print(json.dumps([ours, theirs, [p.folder for p in plugins.installed()]]))\n"
    )
    done = subprocess.run([plugins_installed.python, "-c", probe], capture_output=True, text=True,
                          env=plugins_installed.env, timeout=60)
    ours, theirs, folders = json.loads(done.stdout)
    assert ours == theirs == [["audit", "audit_trail", "audit-trail"], ["tags", "tagging", "tagging"]]
    assert all(Path(folder, "manifest.json").is_file() for folder in folders)


def test_the_build_hook_ships_the_manifest_and_refuses_an_unlabelled_plugin(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    built = json.loads(zipfile.ZipFile(wheels["audit"]).read("audit_trail/manifest.json"))
    assert built["revisions"] == json.loads(manifest.to_json(manifest.scan(EXAMPLES / "audit_trail" / "audit_trail" / "versions")))["revisions"]
    # An entry point naming an attribute (package:attribute) still means the package; the
    # hook's scratch folder goes with the build.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    attribute = plugin_copy(tmp_path, "audit_trail", **{'audit = "audit_trail"': 'audit = "audit_trail:metadata"'})
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps",
                           "--wheel-dir", str(tmp_path / "out"), str(attribute)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "out").glob("audit_trail-*.whl")
    assert json.loads(zipfile.ZipFile(wheel).read("audit_trail/manifest.json"))["revisions"] == built["revisions"]
    assert not list(scratch.glob("plugin-manifest-*"))
    unlabelled = plugin_copy(tmp_path, "audit_trail", **{'branch_labels = ("audit",)': "branch_labels = None"})
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                           "--wheel-dir", str(tmp_path / "out"), str(unlabelled)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert ("cannot build plugin audit: its first revision a0d17e000001 "
            "(2026_11_30_120001_a0d17e000001_create_audit_event.py) must carry branch_labels = ('audit',)") in done.stderr


def test_alembic_in_the_source_tree_sees_installed_plugins(
    plugins_installed: Venv, source_copy: Path, tmp_path: Path
) -> None:
    """An author with plugins installed: alembic upgrade heads runs theirs too, and
    autogenerate neither proposes dropping their tables nor trips on several heads."""
    shutil.copy(REPO / "alembic.ini", source_copy)
    site = subprocess.run([plugins_installed.python, "-c", "import audit_trail, os; print(os.path.dirname(os.path.dirname(audit_trail.__file__)))"],
                          capture_output=True, text=True, env=plugins_installed.env).stdout.strip()
    env = {**plugins_installed.env, "PYTHONPATH": f"{source_copy}{os.pathsep}{site}",
           "MYPKG_DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}"}
    alembic = [sys.executable, "-m", "alembic"]
    up = subprocess.run([*alembic, "upgrade", "heads"], cwd=source_copy, env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "audit_event" in tables(f"sqlite:///{tmp_path / 'dev.db'}")
    new = subprocess.run([*alembic, "revision", "--autogenerate", "-m", "nothing changed"], cwd=source_copy, env=env,
                         capture_output=True, text=True, timeout=120)
    assert new.returncode == 0, new.stderr
    (script,) = (source_copy / "alembic" / "versions").glob("*nothing_changed.py")
    text = script.read_text()
    assert f"down_revision: Union[str, Sequence[str], None] = '{CORE_HEAD}'" in text
    assert "drop_table" not in text and "op." not in text
    # An alembic.ini that names its version_locations itself is left as written (its authors
    # wire plugins by hand): only the folders it names run.
    script.unlink()
    ini = (source_copy / "alembic.ini").read_text().replace(
        "[alembic]\n", "[alembic]\nversion_locations = %(here)s/alembic/versions\n", 1)
    (source_copy / "by_hand.ini").write_text(ini)
    by_hand = {**env, "MYPKG_DATABASE_URL": f"sqlite:///{tmp_path / 'by_hand.db'}"}
    up = subprocess.run([*alembic, "-c", "by_hand.ini", "upgrade", "heads"], cwd=source_copy, env=by_hand,
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "audit_event" not in tables(f"sqlite:///{tmp_path / 'by_hand.db'}")
    assert "my_table" in tables(f"sqlite:///{tmp_path / 'by_hand.db'}")


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "full-path"])
def test_plugins_depending_on_the_cores_head_and_on_another_plugins_head_are_at_head_once_applied(
    plugins_installed: Venv, wheels: dict[str, Path], tmp_path: Path, fast: bool
) -> None:
    """The natural plugin needs the newest core tables (``depends_on`` the core's head), and
    the next builds on the first's head: after ``upgrade`` Alembic folds each dependency into
    its dependent's version row, and every head is applied though not every head has a row.
    ``status`` (both paths), ``status --wait`` and ``fleet status`` say at head."""
    venv = plugins_installed
    audit = plugin_copy(tmp_path, "audit_trail", **{'depends_on = "4a14b7b9f9d6"': f'depends_on = "{CORE_HEAD}"'})
    tags = plugin_copy(tmp_path, "tagging", **{'depends_on = "a0d17e000001"': f'depends_on = "{AUDIT[-1]}"'})
    venv.install(build_wheel(audit, tmp_path / "wheels"), build_wheel(tags, tmp_path / "wheels"))
    env = {} if fast else {"MYPKG_NO_FASTPATH": "1"}
    (tmp_path / "fleet").mkdir()
    urls = [f"sqlite:///{tmp_path / 'fleet' / f't{i}.db'}" for i in range(2)]
    for url in urls:
        up = venv.run("--url", url, "upgrade", cwd=tmp_path, **env)
        assert up.returncode == 0, up.stderr
    import sqlite3

    rows = sorted(r[0] for r in sqlite3.connect(urls[0].removeprefix("sqlite:///")).execute(
        "SELECT version_num FROM alembic_version"))
    assert rows == [TAGS[0]]  # the world claimed: the core's and audit's heads have no row of their own
    status = venv.run("--url", urls[0], "status", "--json", cwd=tmp_path, **env)
    assert status.returncode == 0, status.stdout + status.stderr
    state = json.loads(status.stdout)
    assert state["at_head"] is True and state["pending"] == []
    waited = venv.run("--url", urls[0], "status", "--wait", "5", cwd=tmp_path, **env)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    again = venv.run("--url", urls[0], "upgrade", cwd=tmp_path, **env)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    fleet = venv.run("fleet", "status", "--sqlite-glob", str(tmp_path / "fleet" / "*.db"), "--json", cwd=tmp_path, **env)
    assert fleet.returncode == 0, fleet.stdout + fleet.stderr
    report = json.loads(fleet.stdout)
    assert [row["outcome"] for row in report["targets"]] == ["at head"] * 2, report
    assert report["summary"]["at_head"] == 2 and report["summary"]["behind"] == 0


def test_the_examples_install_as_the_guide_says_and_never_ask_an_index_for_mypkg(
        venv: Venv, wheels: dict[str, Path], tmp_path: Path) -> None:
    """``pip install --no-build-isolation ./examples/plugins/NAME`` in the environment that
    holds mypkg (docs/plugins.md): the hook comes from that mypkg. No ``[build-system]``
    names mypkg (on PyPI that name is an unrelated project, which build isolation fetched)."""
    import tomllib

    for name in ("audit_trail", "tagging"):
        requires = tomllib.loads((EXAMPLES / name / "pyproject.toml").read_text())["build-system"]["requires"]
        assert not [r for r in requires if r.split("[")[0].split(">")[0].strip().lower() == "mypkg"], requires
    guide = (REPO / "docs" / "plugins.md").read_text()
    assert "pip install --no-build-isolation ./examples/plugins/audit_trail ./examples/plugins/tagging" in guide
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv.pip("uninstall", "--yes", "audit-trail", "tagging")
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "--python", venv.python, "install", "--quiet",
                               "--no-build-isolation", "--no-deps", "--no-index", "./audit_trail", "./tagging"],
                              cwd=copy, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        site = subprocess.run([venv.python, "-c", "import audit_trail, os; print(os.path.dirname(audit_trail.__file__))"],
                              capture_output=True, text=True, env=venv.env)
        assert (Path(site.stdout.strip()) / "manifest.json").is_file(), site.stderr  # the hook ran
        status = venv.run("--url", f"sqlite:///{tmp_path / 'app.db'}", "upgrade", cwd=tmp_path)
        assert status.returncode == 0 and "[audit]" in status.stdout and "[tags]" in status.stdout, status.stderr
    finally:
        venv.install(wheels["audit"], wheels["tags"])  # as the module's venv had them


def test_a_plugin_declaring_its_naming_convention_names_its_constraints_by_it(
        plugins_installed: Venv, tmp_path: Path) -> None:
    """A history adopted as a plugin (gnocchi's, named by SQLAlchemy's default convention)
    had its revisions' constraints named by the core's convention: a CHECK it names
    "ck_started_before_ended" became "ck_resource_ck_started_before_ended" and a later
    revision renaming it failed. A plugin's NAMING_CONVENTION now names its own; a plugin
    declaring none keeps the core's (the tagging plugin here)."""
    declaring = plugin_copy(tmp_path, "audit_trail", **{
        "from .models import metadata\n":
            'from .models import metadata\n\nNAMING_CONVENTION = {"ck": "plugin_ck_%(table_name)s_%(constraint_name)s"}\n',
        '        batch.add_column(sa.Column("actor", sa.String(100), nullable=True))\n':
            '        batch.add_column(sa.Column("actor", sa.String(100), nullable=True))\n'
            '        batch.create_check_constraint("actor_named", "actor <> \'\'")\n',
    })
    plugins_installed.install(build_wheel(declaring, tmp_path / "wheel"))
    url = f"sqlite:///{tmp_path / 'app.db'}"
    done = plugins_installed.run("--url", url, "upgrade", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "app.db") as connection:
        (ddl,) = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_event'").fetchone()
        core = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'my_table'").fetchone()[0]
    assert "CONSTRAINT plugin_ck_audit_event_actor_named CHECK" in ddl, ddl
    assert "CONSTRAINT ck_" not in ddl  # not the core's
    assert "CONSTRAINT pk_my_table" in core or "PRIMARY KEY" in core  # the core's own, untouched


def test_a_plugins_post_deploy_revision_waits_for_the_post_phase(plugins_installed: Venv, tmp_path: Path) -> None:
    """Deploy phases are the plugins' too: its declared phase travels in its wheel's manifest."""
    posted = plugin_copy(tmp_path, "audit_trail", **{'depends_on = None\n\n\ndef upgrade() -> None:\n    with op.batch_alter_table("audit_event") as batch:\n        batch.add_column':
                                                     'depends_on = None\nphase = "post"\n\n\ndef upgrade() -> None:\n    with op.batch_alter_table("audit_event") as batch:\n        batch.add_column'})
    assert 'phase = "post"' in next(posted.rglob("*_a0d17e000002_add_actor.py")).read_text()
    plugins_installed.install(build_wheel(posted, tmp_path / "wheel"))
    url = f"sqlite:///{tmp_path / 'app.db'}"
    # A database the previous release built (without the plugin): the pre phase then runs beside it.
    assert plugins_installed.run("--url", url, "upgrade", "--without", "audit", "--without", "tags",
                                 cwd=tmp_path).returncode == 0
    pre = plugins_installed.run("--url", url, "upgrade", "--phase", "pre", cwd=tmp_path)
    assert pre.returncode == 0 and "a0d17e000001" in pre.stdout and "a0d17e000002" not in pre.stdout, pre
    gate = plugins_installed.run("--url", url, "status", "--phase", "pre", "--json", cwd=tmp_path)
    assert gate.returncode == 0, gate.stderr
    assert [(r["revision"], r["plugin"], r["phase"]) for r in json.loads(gate.stdout)["pending"]] == [
        ("a0d17e000002", "audit", "post")]
    post = plugins_installed.run("--url", url, "upgrade", "--phase", "post", cwd=tmp_path)
    assert post.returncode == 0 and "a0d17e000002" in post.stdout, post
