"""Plugins found and fitted to the core in-process: a site folder written on disk (metadata
and packages as pip lays them out) put on ``sys.path``, each way a plugin can be wrong.

tests/plugins/test_plugins.py installs real wheels with pip; this one builds the odd cases a
wheel build would refuse, and the ones only an installation can get into."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mypkg
from mypkg.migrate.errors import MigrateError, UsageError
from mypkg.migrate.history import branches, manifest, plugins, scripts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
CORE_HEAD = mypkg.heads()[0]


def clear() -> None:
    plugins.installed.cache_clear()
    plugins.tables.cache_clear()
    manifest.load.cache_clear()
    scripts._whole.cache_clear()
    scripts.script_location.cache_clear()


class Site:
    """A folder on sys.path holding distributions as pip installs them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, distribution: str, version: str, entry_points: str, package: str | None = None,
            source: Path | None = None) -> Path:
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(entry_points)
        if package and source is not None:
            shutil.copytree(source, self.root / package, ignore=shutil.ignore_patterns("__pycache__"))
        clear()
        return self.root / package if package else info

    def example(self, name: str, plugin: str) -> Path:
        package = name
        return self.add(name.replace("_", "-"), "1.0.0", f"[mypkg.migrations]\n{plugin} = {package}\n",
                        package, EXAMPLES / name / name)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.setattr(sys, "path", [str(root), *sys.path])
    clear()
    yield Site(root)
    monkeypatch.undo()
    for name in [m for m in sys.modules if m.split(".")[0] in {p.name for p in root.iterdir()}]:
        del sys.modules[name]  # imported from this site (its metadata, by tables()): gone with it
    clear()


def test_entry_points_are_read_as_ini_and_the_first_distribution_of_a_name_wins(site: Site, tmp_path: Path) -> None:
    site.add("first-dist", "2.0", "# a comment\n[console_scripts]\nx = y:main\n\n[mypkg.migrations]\n"
             "one = pkg_one\n; another comment\ntwo = pkg_two:attr [extra]\n[other]\nthree = no\n")
    later = tmp_path / "later"
    later.mkdir()
    Site(later).add("First_Dist", "1.0", "[mypkg.migrations]\nshadowed = nope\n")  # same name, normalised
    # Listed after the shadowed one in the same folder: still found (a plugin installed twice
    # must not hide the plugins beside its second copy).
    Site(later).add("second_dist", "1.0", "[mypkg.migrations]\nsecond = pkg_second\n")
    found = plugins.entry_points(path=[str(site.root), str(later), str(tmp_path / "missing")])
    assert found == [("one", "pkg_one", "first_dist", "2.0"), ("two", "pkg_two:attr [extra]", "first_dist", "2.0"),
                     ("second", "pkg_second", "second_dist", "1.0")]
    assert plugins.entry_points(path=[str(later)]) == [("shadowed", "nope", "First_Dist", "1.0"),
                                                       ("second", "pkg_second", "second_dist", "1.0")]
    # A folder earlier on the path holding files named like the distribution (the directory
    # python -m runs from is sys.path[0]) is not metadata: it hides nothing.
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "first_dist.json").write_text("{}")
    (noise / "second_dist").mkdir()
    assert plugins.entry_points(path=[str(noise), str(site.root), str(later)]) == found


@pytest.mark.parametrize("value", ["audit_trail [extra]", "audit_trail:migrations", "audit_trail:migrations [extra]"])
def test_an_entry_point_with_extras_or_an_attribute_names_its_package(site: Site, value: str) -> None:
    """``audit = audit_trail [extra]`` or ``audit_trail:attribute``: the package is what comes
    before the extras and the attribute."""
    site.add("audit-trail", "1.0.0", f"[mypkg.migrations]\naudit = {value}\n", "audit_trail",
             EXAMPLES / "audit_trail" / "audit_trail")
    (plugin,) = plugins.installed()
    assert (plugin.name, plugin.package, plugin.folder) == ("audit", "audit_trail", str(site.root / "audit_trail"))


def test_installed_plugins_are_found_beside_their_metadata_and_merged_after_the_core(site: Site) -> None:
    folder = site.example("audit_trail", "audit")
    (found,) = plugins.installed()
    assert found == plugins.Plugin("audit", "audit-trail", "1.0.0", "audit_trail", str(folder))
    merged = manifest.load()
    assert [rev.revision for rev in merged.revisions[-2:]] == ["a0d17e000001", "a0d17e000002"]
    assert merged.owner == {"a0d17e000001": "audit", "a0d17e000002": "audit"}
    assert merged.core_heads() == (CORE_HEAD,) and set(merged.heads) == {CORE_HEAD, "a0d17e000002"}
    assert merged.folder("a0d17e000002") == str(folder / "versions") and merged.folder(CORE_HEAD) is None
    assert not merged.from_build("a0d17e000002")  # scanned from its scripts: no built manifest
    assert scripts.path_of("a0d17e000001").startswith(str(folder / "versions"))
    assert [p.name for p in merged.plugins] == ["audit"] and merged.plugin("nope") is None
    # Its built manifest, when there is one, is what it is compared against.
    (folder / "manifest.json").write_text(manifest.to_json(manifest.scan(folder / "versions")))
    clear()
    assert manifest.load().from_build("a0d17e000002")
    assert manifest.load().from_build(CORE_HEAD) == (manifest.core().source == "manifest")


def test_upgrade_in_process_runs_the_plugins_and_names_them(site: Site, tmp_path: Path) -> None:
    site.example("audit_trail", "audit")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    result = mypkg.upgrade(url)
    assert {step.revision: step.plugin for step in result.applied if step.plugin} == {
        "a0d17e000001": "audit", "a0d17e000002": "audit"}
    assert sorted(result.after) == sorted([CORE_HEAD, "a0d17e000002"])
    rows = mypkg.applied_history(url)
    assert {(row.revision, row.plugin, row.package_version) for row in rows if row.plugin} == {
        ("a0d17e000001", "audit", "1.0.0"), ("a0d17e000002", "audit", "1.0.0")}
    assert {rev.revision: rev.plugin for rev in mypkg.history() if rev.plugin} == {
        "a0d17e000001": "audit", "a0d17e000002": "audit"}
    # check compares the core's models: the plugin's table is the plugin's (its metadata says so).
    assert mypkg.check(url) == []
    assert plugins.tables() == frozenset({"audit_event"})
    with pytest.raises(UsageError, match=r"downgrade -1 is ambiguous at 2 heads .*NAME@-1 \(NAME: audit\)"):
        mypkg.downgrade(url, "-1")
    # An upgrade the wrong way is told as that at several heads too, not as a downgrade's ambiguity.
    with pytest.raises(UsageError, match=r"^upgrade -1 would go back 1 revision\(s\): use downgrade -1$"):
        mypkg.upgrade(url, "-1")
    with pytest.raises(UsageError, match="confirm with --yes"):
        mypkg.downgrade(url, "audit@base")
    down = mypkg.downgrade(url, "audit@base", confirm_base=True)
    assert [step.revision for step in down.applied] == ["a0d17e000002", "a0d17e000001"]
    assert mypkg.current(url) == (CORE_HEAD,)


def plugin_with(site: Site, tmp_path: Path, name: str = "audit", **replace: str) -> Path:
    source = tmp_path / "edited" / "audit_trail"
    shutil.copytree(EXAMPLES / "audit_trail" / "audit_trail", source, dirs_exist_ok=True)
    for path in (source / "versions").glob("*.py"):
        text = path.read_text()
        for old, new in replace.items():
            text = text.replace(old, new)
        path.write_text(text)
    return site.add("audit-trail", "2.0", f"[mypkg.migrations]\n{name} = audit_trail\n", "audit_trail", source)


@pytest.mark.parametrize(("replace", "message"), [
    ({'branch_labels = ("audit",)': "branch_labels = None"},
     "plugin audit: its first revision a0d17e000001 (2026_11_30_120001_a0d17e000001_create_audit_event.py) must "
     "carry branch_labels = ('audit',), its name, for audit@head and audit@base to mean it"),
    ({'"4a14b7b9f9d6"': '"abcdef123456"'},
     f"plugin audit needs mypkg with revision abcdef123456; this mypkg ({mypkg.__version__}) ships up to "
     f"{CORE_HEAD}: upgrade mypkg, or install the plugin that ships abcdef123456"),
    ({'"4a14b7b9f9d6"': '"billing"'},
     "plugin audit needs 'billing', which neither mypkg nor an installed plugin provides: install it first"),
    ({'revision = "a0d17e000002"': 'revision = "1341fe34ff84"', 'down_revision = "a0d17e000001"':
      'down_revision = "a0d17e000001"'},
     "plugin audit's revision 1341fe34ff84 is shipped by mypkg too: ids must be unique"),
    ({"def upgrade": "def upgrade(:"}, None),
])
def test_a_plugin_that_does_not_fit_is_refused_by_every_command_in_one_line(
    site: Site, tmp_path: Path, replace: dict[str, str], message: str | None
) -> None:
    plugin_with(site, tmp_path, **replace)
    with pytest.raises(MigrateError) as caught:
        manifest.load()
    if message is None:  # a script whose header cannot be read: named, with its line
        assert str(caught.value).startswith("plugin audit (audit-trail 2.0) cannot be read: ")
        assert "not valid Python" in str(caught.value)
    else:
        assert str(caught.value) == message
    with pytest.raises(MigrateError):
        mypkg.status(f"sqlite:///{tmp_path / 'app.db'}")
    assert not (tmp_path / "app.db").exists()


def test_a_plugin_without_its_package_or_its_folder_names_the_distribution_to_reinstall(site: Site) -> None:
    site.add("ghost", "0.1", "[mypkg.migrations]\nghost = ghost_pkg\n")
    with pytest.raises(MigrateError, match=r"^plugin ghost \(ghost 0.1\) names package ghost_pkg, which cannot be "
                                           r"imported: reinstall ghost$"):
        manifest.load()
    shutil.rmtree(site.root / "ghost-0.1.dist-info")
    empty = site.add("hollow", "0.2", "[mypkg.migrations]\nhollow = hollow_pkg\n", "hollow_pkg",
                     EXAMPLES / "audit_trail" / "audit_trail")
    shutil.rmtree(empty / "versions")
    with pytest.raises(MigrateError, match=r"^plugin hollow \(hollow 0.2\) has no versions/ folder in .*hollow_pkg: "
                                           r"reinstall hollow$"):
        manifest.load()


def test_two_distributions_may_not_declare_one_plugin_name(site: Site, tmp_path: Path) -> None:
    site.example("audit_trail", "audit")
    site.add("copycat", "1.0", "[mypkg.migrations]\naudit = copycat_pkg\n", "copycat_pkg",
             EXAMPLES / "tagging" / "tagging")
    with pytest.raises(MigrateError, match="^two distributions declare plugin audit: audit-trail and copycat; "
                                           "uninstall one of them$"):
        manifest.load()


def test_branches_chosen_by_name(site: Site) -> None:
    site.example("audit_trail", "audit")
    site.example("tagging", "tags")
    assert branches.targets("audit", ()) == ["audit@head"]
    assert branches.targets("mypkg", ()) == [CORE_HEAD]
    assert branches.targets(None, ["tags"]) == [CORE_HEAD, "audit@head"]
    # Run one after the other, reported as one upgrade: from where it started to where it ended.
    url = f"sqlite:///{site.root.parent / 'app.db'}"
    done = mypkg.upgrade(url, without=["tags"])
    assert done.before == () and sorted(done.after) == sorted([CORE_HEAD, "a0d17e000002"])
    assert [step.plugin for step in done.applied].count("audit") == 2 and "tags" not in str(done.applied)
    assert branches.needs(manifest.load(), "tags") == {"audit", "mypkg"}
    with pytest.raises(UsageError, match="^--without audit: plugin tags builds on it; leave out tags too"):
        branches.targets(None, ["audit"])
    with pytest.raises(UsageError, match="^--without mypkg: every plugin builds on mypkg's own revisions"):
        branches.targets(None, ["mypkg"])
    with pytest.raises(UsageError, match=r"^--only nope: no installed plugin is named so \(installed: audit, tags; "):
        branches.targets("nope", ())
    with pytest.raises(UsageError, match="^--without nope: no installed plugin"):
        branches.targets(None, ["nope"])
    with pytest.raises(UsageError, match="choose heads: give no revision"):
        mypkg.upgrade("sqlite://", "+1", only="audit")


def test_a_plugin_whose_package_fails_to_import_is_named_when_its_tables_are_needed(site: Site, tmp_path: Path) -> None:
    folder = site.example("audit_trail", "audit")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    mypkg.upgrade(url)  # migrating never imports a plugin's package
    (folder / "__init__.py").write_text("raise RuntimeError('half installed')\n")
    with pytest.raises(MigrateError, match=r"^plugin audit \(audit-trail\) cannot be imported: RuntimeError: half installed$"):
        mypkg.check(url)


def test_a_plugin_is_not_removed_while_another_builds_on_it_whatever_their_names(site: Site, tmp_path: Path) -> None:
    """The dependent plugin's name sorts before the one asked for here (tags < zz)."""
    plugin_with(site, tmp_path, name="zz", **{'("audit",)': '("zz",)'})
    site.example("tagging", "tags")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    mypkg.upgrade(url)
    before = mypkg.current(url)
    with pytest.raises(MigrateError, match=r"^tags builds on plugin zz \(7a9500000001 is applied here\), so zz's "
                                           r"tables cannot go first; nothing was run"):
        mypkg.downgrade(url, "zz@base", confirm_base=True)
    assert mypkg.current(url) == before


def test_a_plugin_may_branch_off_a_core_revision_with_down_revision(site: Site, tmp_path: Path) -> None:
    """Its first revision's parent is the core's (not a dependency): still its first, so
    still the one that must carry the label; and it migrates."""
    plugin_with(site, tmp_path, **{"down_revision = None": 'down_revision = "4a14b7b9f9d6"',
                                   'depends_on = "4a14b7b9f9d6"': "depends_on = None"})
    merged = manifest.load()
    assert merged.by_id["a0d17e000001"].down_revisions == ("4a14b7b9f9d6",)
    assert "a0d17e000001" not in merged.heads and "4a14b7b9f9d6" not in merged.heads
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert sorted(mypkg.upgrade(url).after) == sorted([CORE_HEAD, "a0d17e000002"])
    for installed in ("audit_trail-2.0.dist-info", "audit_trail"):
        shutil.rmtree(site.root / installed)
    plugin_with(site, tmp_path, **{"down_revision = None": 'down_revision = "4a14b7b9f9d6"',
                                   'branch_labels = ("audit",)': "branch_labels = None"})
    with pytest.raises(MigrateError, match="^plugin audit: its first revision a0d17e000001 .* must carry branch_labels"):
        manifest.load()


def test_an_empty_database_gets_the_core_checkpoint_then_the_plugins(source_copy: Path, tmp_path: Path) -> None:
    """A checkpoint is the core's: installed in one step, the plugins' revisions after it,
    the same schema as the replay."""
    site = Site(tmp_path / "plugins-site")
    site.root.mkdir()
    site.example("audit_trail", "audit")
    site.example("tagging", "tags")
    clear()  # Site.add clears for this process; the runs below are processes of their own
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")},
           "PYTHONPATH": f"{source_copy}{os.pathsep}{site.root}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "mypkg", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        return done

    run("checkpoint", CORE_HEAD)
    through = run("--url", f"sqlite:///{tmp_path / 'through.db'}", "upgrade").stdout
    # In a log, the line before it starts too (docs/observability.md).
    assert through.splitlines()[0].startswith(f"applying {CORE_HEAD}  checkpoint of")
    assert through.splitlines()[1].startswith(f"applied  {CORE_HEAD}  checkpoint of")
    assert "[audit]" in through and "[tags]" in through
    run("--url", f"sqlite:///{tmp_path / 'replayed.db'}", "upgrade", "--no-checkpoint")

    def schema(name: str) -> list[tuple[str, str, str]]:
        with sqlite3.connect(tmp_path / name) as db:
            return sorted(db.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'mypkg_%'"))

    assert schema("through.db") == schema("replayed.db")
    with sqlite3.connect(tmp_path / "through.db") as db:
        assert sorted(db.execute("SELECT version_num FROM alembic_version")) == sorted(
            [(CORE_HEAD,), ("a0d17e000002",), ("7a9500000001",)])


@pytest.mark.parametrize("value", [":::", ":attribute", " [extra]", "pkg-with-dash"])
def test_an_entry_point_naming_no_package_is_said_as_such(site: Site, value: str) -> None:
    site.add("odd-plugin", "1.0.0", f"[mypkg.migrations]\nodd = {value}\n")
    with pytest.raises(MigrateError) as caught:
        manifest.load()
    message = str(caught.value)
    assert message.startswith("plugin odd (odd-plugin 1.0.0): its entry point in [mypkg.migrations] names no package")
    assert "package or package:attribute" in message and "names package ," not in message
