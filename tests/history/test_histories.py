"""Any Alembic history runs under ``mypkg-migrate`` exactly as under ``alembic``.

The corpus (:mod:`tests.history.histories`) is generated in code. For each history: the manifest
equals Alembic's own ScriptDirectory; ``mypkg-migrate`` and ``alembic`` build the same
schema (constraint and index names included) on SQLite and PostgreSQL; the fast path
answers as the full path. A property test replays Alembic's history order on random
graphs with merges, branches, labels and dependencies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mypkg.migrate.database.ledger import RUNNER_TABLES
from mypkg.migrate.history import manifest
from tests.history import histories
from tests.servers.postgresql import PostgresServer

CORPUS = sorted(histories.CORPUS)


def alembic_directory(versions_parent: Path) -> ScriptDirectory:
    return ScriptDirectory(str(versions_parent), recursive_version_locations=True)


def alembic_view(directory: ScriptDirectory) -> dict[str, object]:
    """What Alembic makes of a history: order, heads, and each revision's header."""
    walked = list(directory.walk_revisions())
    walked.reverse()
    return {
        "order": [rev.revision for rev in walked],
        "heads": list(directory.get_heads()),
        "revisions": {
            rev.revision: (
                tuple(rev._versioned_down_revisions),
                tuple(sorted(rev._orig_branch_labels)),
                tuple(rev.dependencies) if isinstance(rev.dependencies, tuple) else
                ((rev.dependencies,) if rev.dependencies else ()),
                rev.doc,
            )
            for rev in walked
        },
    }


def manifest_view(shipped: manifest.Manifest) -> dict[str, object]:
    ordered = shipped.ordered()
    assert ordered is not None
    return {
        "order": [rev.revision for rev in ordered],
        "heads": list(shipped.heads),
        "revisions": {
            rev.revision: (rev.down_revisions, tuple(sorted(rev.branch_labels)), rev.depends_on, rev.message)
            for rev in ordered
        },
    }


@pytest.mark.parametrize("name", CORPUS)
def test_manifest_reads_every_history_as_alembic_does(name: str, tmp_path: Path) -> None:
    histories.write(tmp_path / "versions", histories.CORPUS[name]())
    shipped = manifest.Manifest(manifest.scan(tmp_path / "versions"), "scripts")
    assert manifest_view(shipped) == alembic_view(alembic_directory(tmp_path))


def test_black_and_typed_headers_over_several_lines_are_read(tmp_path: Path) -> None:
    histories.write(tmp_path / "versions", histories.black_merge() + histories.labelled_branches())
    by_id = {rev.revision: rev for rev in manifest.scan(tmp_path / "versions")}
    assert by_id["aa0000000004"].down_revisions == ("aa0000000002", "aa0000000003")
    assert by_id["bb0000000004"].depends_on == ("accounts",)
    assert by_id["bb0000000001"].branch_labels == ("accounts",)
    assert by_id["aa0000000004"].message == "merge left and right"


def test_a_revision_in_a_subfolder_is_in_the_manifest_and_in_alembic(tmp_path: Path) -> None:
    histories.write(tmp_path / "versions", histories.naming_batch_data())
    by_id = {rev.revision: rev for rev in manifest.scan(tmp_path / "versions")}
    assert by_id["dd0000000004"].filename == "later/w_index.py"
    assert "dd0000000004" in {rev.revision for rev in alembic_directory(tmp_path).walk_revisions()}


def test_a_header_that_is_not_a_literal_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "odd.py").write_text('PARENT = "a"\nrevision = "b"\ndown_revision = PARENT\n')
    with pytest.raises(manifest.ScriptError, match=r"odd.py: down_revision must be a literal, or a constant of a "
                                                    r"module on the path \(line 3\)"):
        manifest.scan(tmp_path / "versions")


NEUTRON_LIKE = '''\
from corpus_app.db.migration import cli
from corpus_app.db.migration.cli import EXPAND_BRANCH as EXPAND
import corpus_app.db.migration.cli as cli_module

"""Initial no-op contract rule."""

revision = "30018084ec99"
down_revision = "kilo"
branch_labels = (cli.CONTRACT_BRANCH,)
depends_on = (EXPAND, cli_module.MIGRATION_BRANCHES[0]) if False else (EXPAND,)
'''


def test_a_header_naming_a_module_constant_is_read_from_that_modules_source(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """neutron's ``branch_labels = (cli.CONTRACT_BRANCH,)``: Alembic imports the script;
    the manifest reads the constant from its module's source on the path, never importing
    it (nor the application, whose package here would fail to import)."""
    package = tmp_path / "site" / "corpus_app" / "db" / "migration"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (package / "cli.py").write_text("EXPAND_BRANCH = 'expand'\nCONTRACT_BRANCH = 'contract'\n"
                                    "MIGRATION_BRANCHES = (EXPAND_BRANCH, CONTRACT_BRANCH)\n")
    (tmp_path / "versions").mkdir()
    script = tmp_path / "versions" / "30018084ec99_initial.py"
    script.write_text(NEUTRON_LIKE.replace("depends_on = (EXPAND, cli_module.MIGRATION_BRANCHES[0]) if False else (EXPAND,)",
                                           "depends_on = (EXPAND,)"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = manifest.parse_script(script)
    assert found is not None and found.branch_labels == ("contract",) and found.depends_on == ("expand",)
    from mypkg.migrate.history.constants import constant

    assert constant("corpus_app.db.migration.cli", "MIGRATION_BRANCHES", [str(tmp_path / "site")]) == ("expand", "contract")
    # `import a.b.c as alias` and a plain `import a.b.c` name the module too.
    script.write_text("import corpus_app.db.migration.cli as cli_module\nimport corpus_app.db.migration.cli\n"
                      "revision = 'r1'\ndown_revision = None\nbranch_labels = (cli_module.CONTRACT_BRANCH,)\n"
                      "depends_on = corpus_app.db.migration.cli.EXPAND_BRANCH\n")
    found = manifest.parse_script(script)
    assert found is not None and found.branch_labels == ("contract",) and found.depends_on == ("expand",)
    # Constants naming each other in a circle (directly, or inside a tuple) are refused, not
    # followed forever; a chain of five is followed.
    site = [str(tmp_path / "site")]
    (package / "loop.py").write_text("A = B\nB = A\nC = (D,)\nD = (C,)\n")
    for name in ("A", "C"):
        with pytest.raises(ValueError, match="too many indirections"):
            constant("corpus_app.db.migration.loop", name, site)
    (package / "chain.py").write_text("N0 = N1\nN1 = N2\nN2 = N3\nN3 = N4\nN4 = N5\nN5 = 'end'\n")
    assert constant("corpus_app.db.migration.chain", "N0", site) == "end"
    # Annotated assignments count, the one of the name asked for, the last one winning.
    (package / "typed.py").write_text("AAA: str = 'wrong'\nNAME: str = 'early'\nNAME: str = 'right'\n"
                                      "ZZZ: str = 'later'\n")
    assert constant("corpus_app.db.migration.typed", "NAME", site) == "right"
    # An expression that only running code can tell stays refused, by name.
    script.write_text(NEUTRON_LIKE)
    with pytest.raises(manifest.ScriptError, match="depends_on must be a literal, or a constant"):
        manifest.parse_script(script)
    # Off the path (a build environment without the application): refused the same way.
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if "site" not in p or "site-packages" in p])
    script.write_text(NEUTRON_LIKE.replace("depends_on = (EXPAND, cli_module.MIGRATION_BRANCHES[0]) if False else (EXPAND,)",
                                           "depends_on = None"))
    with pytest.raises(manifest.ScriptError, match="branch_labels must be a literal, or a constant"):
        manifest.parse_script(script)


# --- random graphs: Alembic's order, heads and ancestors, replayed ------------------


@st.composite
def revision_graphs(draw: st.DrawFn) -> list[histories.Script]:
    """Random histories: several roots, branches, merges, labels, one dependency each."""
    count = draw(st.integers(min_value=1, max_value=9))
    ids = [f"{index:02d}{draw(st.sampled_from('abcdef'))}" + "0" * 9 for index in range(count)]
    scripts, labels = [], {}
    for index, revision in enumerate(ids):
        earlier = ids[:index]
        parents = draw(st.lists(st.sampled_from(earlier), max_size=min(3, len(earlier)), unique=True)) if earlier else []
        label = f"l{index}" if draw(st.booleans()) and draw(st.booleans()) else None
        if label:
            labels[label] = revision
        depends: str | tuple[str, ...] | None = None
        candidates = [rev for rev in earlier if rev not in parents] + [lab for lab, rev in labels.items() if rev in earlier]
        if candidates and draw(st.integers(0, 2)) == 0:
            # One dependency or several (which ancestors may share, for the normalisation).
            chosen = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique=True))
            depends = chosen[0] if len(chosen) == 1 else tuple(chosen)
        down = None if not parents else parents[0] if len(parents) == 1 else tuple(parents)
        style = draw(st.sampled_from(["plain", "black", "typed"]))
        name = draw(st.sampled_from([f"{index:03d}_{revision}.py", f"z{count - index:03d}.py"]))
        scripts.append(
            histories.script(name, revision, down, f"step {index}", style=style,
                             labels=(label,) if label else None, depends_on=depends)
        )
    return scripts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=revision_graphs(), data=st.data())
def test_manifest_replays_alembic_on_random_graphs(graph: list[histories.Script], data: st.DataObject, tmp_path: Path) -> None:
    root = tmp_path / data.draw(st.uuids()).hex
    histories.write(root / "versions", graph)
    shipped = manifest.Manifest(manifest.scan(root / "versions"), "scripts")
    directory = alembic_directory(root)
    if shipped.ordered() is None:
        # Stepping aside is allowed only where Alembic's own order is a set's order.
        assert any(len(shipped.dependencies(rev.revision)) > 1 for rev in shipped.revisions) or shipped.problems()
        return
    assert manifest_view(shipped) == alembic_view(directory)
    # Any database state: the applied set is what Alembic counts from those heads.
    picks = data.draw(st.lists(st.sampled_from(sorted(shipped.by_id)), min_size=1, max_size=3, unique=True))
    # A version table never holds a revision beside one of its descendants.
    current = tuple(
        rev for rev in picks if not any(rev in shipped.ancestors((other,)) for other in picks if other != rev)
    )
    expected = {rev.revision for rev in directory.revision_map.iterate_revisions(current, "base")}
    assert set(shipped.ancestors(current)) == expected


# --- both commands, same schema ---------------------------------------------------


def snapshot(url: str) -> dict[str, object]:
    """Every table's columns, keys, constraints and indexes, by name; the version table."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            tables = {}
            for table in sorted(set(inspector.get_table_names()) - RUNNER_TABLES):
                tables[table] = {
                    "columns": [(c["name"], str(c["type"]).lower(), c["nullable"]) for c in inspector.get_columns(table)],
                    "pk": inspector.get_pk_constraint(table).get("name"),
                    "fks": sorted((fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"])
                                  for fk in inspector.get_foreign_keys(table)),
                    "uniques": sorted((u["name"] or "", tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
                    "indexes": sorted((i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                                      for i in inspector.get_indexes(table)),
                    "checks": sorted(c["name"] or "" for c in inspector.get_check_constraints(table)),
                    "rows": connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar(),
                }
            version = sorted(row[0] for row in connection.execute(sa.text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()
    return {"tables": tables, "version": version}


def run(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m mypkg`` or ``python -m alembic`` from the checkout at ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(PYTHONPATH=str(root), **extra)
    result = subprocess.run([sys.executable, "-m", *args], cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runner.db'}", f"sqlite:///{tmp_path / 'alembic.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    urls = server.create_database(), server.create_database()
    try:
        yield urls
    finally:
        for url in urls:
            server.drop_database(url)


@pytest.mark.parametrize("name", CORPUS)
def test_runner_and_alembic_build_the_same_schema(name: str, tmp_path: Path, two_databases: tuple[str, str]) -> None:
    root = histories.project_with(tmp_path / "project", histories.CORPUS[name]())
    runner_url, alembic_url = two_databases
    pg = runner_url.startswith("postgresql")
    runner_sa_url = runner_url.replace("postgresql://", "postgresql+psycopg://") if pg else runner_url
    alembic_sa_url = alembic_url.replace("postgresql://", "postgresql+psycopg://") if pg else alembic_url

    def alembic(*args: str) -> None:
        # The alembic command from the checkout's root; $MYPKG_DATABASE_URL wins over alembic.ini.
        run(root, "alembic", *args, MYPKG_DATABASE_URL=alembic_url)

    run(root, "mypkg", "--url", runner_url, "upgrade")
    alembic("upgrade", "heads")
    at_head = snapshot(runner_sa_url)
    assert at_head == snapshot(alembic_sa_url)
    assert at_head["tables"], "the history built no table"

    run(root, "mypkg", "--url", runner_url, "downgrade", "base", "--yes")
    alembic("downgrade", "base")
    assert snapshot(runner_sa_url) == snapshot(alembic_sa_url) == {"tables": {}, "version": []}

    run(root, "mypkg", "--url", runner_url, "upgrade")
    alembic("upgrade", "heads")
    assert snapshot(runner_sa_url) == snapshot(alembic_sa_url) == at_head


# --- the fast path answers on any graph, exactly as the full path ---------------------

COMPARE_PATHS = r"""
import contextlib, io, json, os, sys
import sqlalchemy as sa
import mypkg
from mypkg.migrate import cli
from mypkg.migrate.fast import answers as fastpath
from mypkg.migrate.history import manifest

url, sa_url = sys.argv[1], sys.argv[2]

def answer(args, fast):
    os.environ.pop("MYPKG_NO_FASTPATH", None)
    if not fast:
        os.environ["MYPKG_NO_FASTPATH"] = "1"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["--url", url, *args])
    return code, out.getvalue()

def set_version(revisions):
    engine = sa.create_engine(sa_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(sa.text("DELETE FROM alembic_version"))
        for rev in revisions:
            connection.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": rev})
    engine.dispose()

shipped = manifest.load()
states = [()] + [(rev.revision,) for rev in shipped.revisions] + [shipped.heads]
report = {"answered": 0, "differences": []}
for state in states:
    set_version(state)
    if fastpath.status(url) is not None:
        report["answered"] += 1
    for args in (["status"], ["status", "--json"], ["current"], ["current", "--json"]):
        fast, full = answer(args, True), answer(args, False)
        if fast != full:
            report["differences"].append([list(state), args, fast, full])
set_version(())
mypkg.upgrade(url)
report["noop_upgrade_fast"] = fastpath.nothing_to_upgrade(url) is not None
report["states"] = len(states)
print(json.dumps(report))
"""


@pytest.mark.parametrize("name", CORPUS)
def test_fast_path_answers_every_history_as_the_full_path(name: str, tmp_path: Path, db_url: str) -> None:
    import json

    root = histories.project_with(tmp_path / "project", histories.CORPUS[name]())
    sa_url = db_url.replace("postgresql://", "postgresql+psycopg://")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    done = subprocess.run(
        [sys.executable, "-c", COMPARE_PATHS, db_url, sa_url], cwd=root, capture_output=True, text=True,
        timeout=300, env={**env, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["differences"] == []
    # It answers on merges, several heads, labels and dependencies: it does not step aside.
    assert report["answered"] == report["states"]
    assert report["noop_upgrade_fast"]


# --- offline SQL that fails part way -------------------------------------------------


def test_offline_sql_names_the_failing_revision_and_keeps_the_sql_before_it(tmp_path: Path) -> None:
    scripts = histories.black_merge()[:2] + [
        histories.script("3_reads.py", "aa00000000ff", "aa0000000002", "reads the database",
                         'count = op.get_bind().execute(sa.text("SELECT count(*) FROM probe")).scalar()'),
    ]
    root = histories.project_with(tmp_path / "project", scripts)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run(
        [sys.executable, "-m", "mypkg", "--url", "postgresql://db/app", "upgrade", "--sql", "base:heads"],
        cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "offline SQL failed in revision aa00000000ff" in error[0]
    assert "CREATE TABLE probe" in result.stdout and "CREATE TABLE left_t" in result.stdout
    assert "aa00000000ff" not in result.stdout  # nothing of the failing revision
    assert result.stdout.rstrip().endswith("COMMIT;")


# --- the release map is checked when the wheel is built --------------------------------


@pytest.mark.slow
def test_the_wheel_build_fails_on_a_release_naming_no_revision(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import REPO

    root = tmp_path / "project"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.db", "build", "dist"))
    releases = root / "mypkg" / "releases.py"
    releases.write_text(releases.read_text().replace('"0.1.0": "1341fe34ff84",', '"0.1.0": "1341fe34ff84",\n    "0.0.9": "deadbeef0000",'))
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(root)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "release 0.0.9 names revision 'deadbeef0000', which matches no shipped revision" in result.stdout + result.stderr
    assert not list((tmp_path / "dist").glob("*.whl")) if (tmp_path / "dist").exists() else True


def test_verify_reports_a_release_naming_no_revision(tmp_path: Path, sqlite_url: str) -> None:
    root = histories.project_with(tmp_path / "project", histories.black_merge())
    releases = root / "mypkg" / "releases.py"
    releases.write_text(releases.read_text().replace("RELEASES: dict[str, str] = {", 'RELEASES: dict[str, str] = {\n    "1.0": "aa0000000005",\n    "0.9": "ffff",'))
    run(root, "mypkg", "--url", sqlite_url, "upgrade")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    result = subprocess.run(
        [sys.executable, "-m", "mypkg", "--url", sqlite_url, "verify"],
        cwd=root, env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "0.9  bad release: release 0.9 names revision 'ffff', which matches no shipped revision" in result.stdout
    assert "1.0" not in result.stdout


# --- the dependency normalisation, on the shapes the random graphs rarely draw ---------


def test_two_dependencies_no_ancestor_shares_make_the_manifest_step_aside(tmp_path: Path) -> None:
    """Alembic keeps them in a set, whose order changes from one process to the next: no
    order is exactly Alembic's, so the fast path must not claim one."""
    graph = [
        histories.script("a.py", "a00000000001", None, "a"),
        histories.script("b.py", "b00000000001", None, "b"),
        histories.script("c.py", "c00000000001", None, "c", depends_on=("a00000000001", "b00000000001")),
    ]
    histories.write(tmp_path / "versions", graph)
    shipped = manifest.Manifest(manifest.scan(tmp_path / "versions"), "scripts")
    assert shipped.ordered() is None


def test_a_dependency_an_ancestor_already_has_is_found_past_a_diamond(tmp_path: Path) -> None:
    """x depends on d, which its ancestor r0 depends on too: Alembic drops x's own. The
    walk up from x meets t twice (a diamond) before it reaches r0, and must go on."""
    graph = [
        histories.script("d.py", "d00000000001", None, "d"),
        histories.script("r0.py", "e00000000001", None, "r0", depends_on="d00000000001"),
        histories.script("t.py", "f00000000001", None, "t"),
        histories.script("t2a.py", "f00000000002", "f00000000001", "t2a"),
        histories.script("t2b.py", "f00000000003", "f00000000001", "t2b"),
        histories.script("q.py", "f00000000004", ("f00000000002", "f00000000003"), "q"),
        histories.script("x.py", "f00000000005", ("e00000000001", "f00000000004"), "x", depends_on="d00000000001"),
        histories.script("y.py", "f00000000006", "f00000000005", "y"),
    ]
    histories.write(tmp_path / "versions", graph)
    shipped = manifest.Manifest(manifest.scan(tmp_path / "versions"), "scripts")
    assert shipped.ordered() is not None
    assert manifest_view(shipped) == alembic_view(alembic_directory(tmp_path))


@pytest.mark.parametrize("name", CORPUS)
def test_the_built_manifest_records_the_order_alembic_lists(name: str, tmp_path: Path) -> None:
    """The build works the history order out once; what it records is Alembic's."""
    histories.write(tmp_path / "versions", histories.CORPUS[name]())
    from mypkg.migrate.history.order import history_order

    scanned = manifest.scan(tmp_path / "versions")
    revisions, recorded = manifest.from_json(manifest.to_json(scanned, history_order(manifest.Manifest(scanned, "scripts"))))
    assert recorded is not None
    assert recorded == alembic_view(alembic_directory(tmp_path))["order"]
    built = manifest.Manifest(revisions, "manifest", recorded)
    assert [rev.revision for rev in built.ordered() or []] == recorded


def test_a_script_that_is_not_python_is_refused_by_name_and_line(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "broken.py").write_text('revision = "a1"\ndown_revision = None\ndef upgrade(:\n    pass\n')
    with pytest.raises(manifest.ScriptError, match=r"broken.py: not valid Python: .* \(line 3\)"):
        manifest.scan(versions)


def test_a_release_may_name_a_revision_by_a_unique_prefix_only() -> None:
    shipped = manifest.Manifest([
        manifest.Revision("abc111", (), "one", "x", "1.py", (), ()),
        manifest.Revision("abc222", ("abc111",), "two", "x", "2.py", (), ()),
        manifest.Revision("def333", ("abc222",), "three", "x", "3.py", (), ()),
    ], "scripts")
    found = dict(manifest.release_problems(
        {"1.0": "abc111", "1.1": "def", "1.2": "abc", "1.3": "fff"}, shipped
    ))
    assert set(found) == {"1.2", "1.3"}  # whole id and unique prefix are fine
    assert "matches 2 revisions" in found["1.2"]
    assert "matches no shipped revision" in found["1.3"]


@pytest.mark.parametrize("text", [
    'RELEASES = {"1.0": "abc"}\n',
    'RELEASES: dict[str, str] = {"1.0": "abc"}\n',
    'LATEST = RELEASES = {"1.0": "abc"}\n',
    'RELEASES = LATEST = {"1.0": "abc"}\n',
])
def test_the_release_map_is_read_however_it_is_assigned(text: str, tmp_path: Path) -> None:
    path = tmp_path / "releases.py"
    path.write_text("from __future__ import annotations\n" + text)
    assert manifest.read_releases(path) == {"1.0": "abc"}
