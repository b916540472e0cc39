"""Deploy phases: ``upgrade --phase pre`` before the new release starts, ``--phase post`` once
the old one is gone; ``status --phase pre`` as the new release's gate. Each history here is
the shipped one with revisions added, run from a copy of the sources, as authors add them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mypkg
from tests.runtime.test_api import run_copy

HEAD = mypkg.heads()[0]

#: A revision script; ``extra`` adds module-level lines (a phase, labels).
SCRIPT = '''"""{message}"""
from alembic import op
import sqlalchemy as sa

revision = "{revision}"
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = {depends!r}
{extra}

def upgrade() -> None:
    op.create_table("t_{revision}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("t_{revision}")
'''


def add(source: Path, revision: str, down: str | tuple[str, ...] | None, *, phase: str | None = None,
        labels: tuple[str, ...] | None = None, depends: str | None = None, message: str = "") -> None:
    extra = f'phase = "{phase}"\n' if phase else ""
    text = SCRIPT.format(message=message or f"{phase or 'pre'} {revision}", revision=revision, down=down,
                         labels=labels, depends=depends, extra=extra)
    (source / "alembic" / "versions" / f"9999_{revision}.py").write_text(text)


def current(source: Path, url: str) -> list[str]:
    found = run_copy(source, "--url", url, "current", "--json")
    assert found.returncode == 0, found.stderr
    return json.loads(found.stdout)["current"]


def status(source: Path, url: str, *args: str) -> tuple[int, dict]:
    found = run_copy(source, "--url", url, "status", "--json", *args)
    assert found.returncode in (0, 1), found.stderr
    return found.returncode, json.loads(found.stdout)


class TestDeclaredPhases:
    """``phase = "post"`` in the script."""

    @pytest.fixture
    def history(self, source_copy: Path) -> Path:
        add(source_copy, "b0000000e001", HEAD)  # pre: the default
        add(source_copy, "b0000000c001", "b0000000e001", phase="post")
        return source_copy

    def test_pre_then_post(self, history: Path, db_url: str) -> None:
        assert run_copy(history, "--url", db_url, "upgrade", HEAD).returncode == 0
        code, before = status(history, db_url)
        assert code == 1 and {rev["revision"]: rev["phase"] for rev in before["pending"]} == {
            "b0000000e001": "pre", "b0000000c001": "post"}
        code, gate = status(history, db_url, "--phase", "pre")
        assert code == 1 and gate["ready"] is False and gate["phase"] == "pre"

        pre = run_copy(history, "--url", db_url, "upgrade", "--phase", "pre")
        assert pre.returncode == 0, pre.stderr
        assert current(history, db_url) == ["b0000000e001"]
        for fast in ({}, {"MYPKG_NO_FASTPATH": "1"}):  # the gate opens, on both paths; at head it is not
            gate_text = run_copy(history, "--url", db_url, "status", "--phase", "pre")
            assert gate_text.returncode == 0, gate_text.stdout
            assert "1 revision(s): 0 pre-deploy, 1 post-deploy" in gate_text.stdout
            assert "b0000000c001  post b0000000c001  [post-deploy]" in gate_text.stdout
        assert status(history, db_url)[0] == 1
        again = run_copy(history, "--url", db_url, "upgrade", "--phase", "pre")
        assert again.returncode == 0 and "nothing to do, at b0000000e001" in again.stdout

        post = run_copy(history, "--url", db_url, "upgrade", "--phase", "post")
        assert post.returncode == 0, post.stderr
        assert current(history, db_url) == ["b0000000c001"]
        code, after = status(history, db_url, "--phase", "pre")
        assert code == 0 and after["at_head"] and after["ready"]

    def test_no_phase_runs_everything_and_an_empty_database_takes_all(self, history: Path, sqlite_url: str,
                                                                       tmp_path: Path) -> None:
        assert run_copy(history, "--url", sqlite_url, "upgrade").returncode == 0
        assert current(history, sqlite_url) == ["b0000000c001"]
        empty = f"sqlite:///{tmp_path / 'empty.db'}"  # no release runs on it yet
        assert run_copy(history, "--url", empty, "upgrade", "--phase", "pre").returncode == 0
        assert current(history, empty) == ["b0000000c001"]

    def test_status_wait_with_the_pre_phase_returns_once_only_post_is_pending(
        self, history: Path, sqlite_url: str
    ) -> None:
        assert run_copy(history, "--url", sqlite_url, "upgrade", HEAD).returncode == 0
        late = run_copy(history, "--url", sqlite_url, "status", "--wait", "0.5", "--phase", "pre")
        assert late.returncode == 1 and "still 1 pre-deploy revision(s) behind" in late.stderr
        assert run_copy(history, "--url", sqlite_url, "upgrade", "--phase", "pre").returncode == 0
        ready = run_copy(history, "--url", sqlite_url, "status", "--wait", "0.5", "--phase", "pre")
        assert ready.returncode == 0, ready.stderr

    def test_a_pre_revision_behind_a_pending_post_one_is_refused_before_anything_runs(
        self, history: Path, sqlite_url: str
    ) -> None:
        add(history, "b0000000e002", "b0000000c001")  # pre, but written after the post one
        assert run_copy(history, "--url", sqlite_url, "upgrade", HEAD).returncode == 0
        refused = run_copy(history, "--url", sqlite_url, "upgrade", "--phase", "pre")
        assert refused.returncode == 1, refused.stderr
        line = refused.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in line
        assert "pre-deploy revision b0000000e002" in line and "post-deploy revision b0000000c001" in line
        assert "Re-parent b0000000e002 (its down_revision) onto b0000000e001" in line
        assert current(history, sqlite_url) == [HEAD]  # not even the first pre revision ran
        # Re-parented as told: the pre phase runs both pre revisions, the post one waits.
        path = history / "alembic" / "versions" / "9999_b0000000e002.py"
        path.write_text(path.read_text().replace("down_revision = 'b0000000c001'", "down_revision = 'b0000000e001'"))
        assert run_copy(history, "--url", sqlite_url, "upgrade", "--phase", "pre").returncode == 0
        code, state = status(history, sqlite_url, "--phase", "pre")
        assert code == 0 and [rev["revision"] for rev in state["pending"]] == ["b0000000c001"]
        assert run_copy(history, "--url", sqlite_url, "upgrade", "--phase", "post").returncode == 0
        assert sorted(current(history, sqlite_url)) == ["b0000000c001", "b0000000e002"]

    @pytest.mark.parametrize(("args", "says"), [
        (("upgrade", "--phase", "later"), "invalid choice: 'later'"),
        (("upgrade", "+1", "--phase", "pre"), "--phase chooses the revisions to run"),
        (("upgrade", "--phase", "pre", "--sql"), "for SQL give the range"),
        (("upgrade", "--phase", "pre", "--only", "mypkg"), "--phase chooses the revisions to run"),
        (("upgrade", "--phase", "post", "--without", "tags"), "--phase chooses the revisions to run"),
    ])
    def test_bad_phase_usage_is_one_line_and_exit_2(self, history: Path, sqlite_url: str, args: tuple[str, ...],
                                                    says: str) -> None:
        result = run_copy(history, "--url", sqlite_url, *args)
        assert result.returncode == 2 and says in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    def test_a_phase_neither_pre_nor_post_in_a_script_is_named(self, history: Path, sqlite_url: str) -> None:
        add(history, "b0000000e003", "b0000000c001", phase="after")
        found = run_copy(history, "--url", sqlite_url, "status")
        assert found.returncode == 1 and "9999_b0000000e003.py: phase = 'after'" in found.stderr, found.stderr
        assert "Traceback" not in found.stderr


def test_expand_and_contract_branches_are_the_phases(source_copy: Path, db_url: str) -> None:
    """Neutron's layout: an ``expand`` and a ``contract`` branch from a common revision; each
    contract revision depends on the expand revision it needs. No phase declared anywhere."""
    add(source_copy, "e0000000e001", HEAD, labels=("expand",))
    add(source_copy, "c0000000c001", HEAD, labels=("contract",), depends="e0000000e001")
    add(source_copy, "e0000000e002", "e0000000e001")
    add(source_copy, "c0000000c002", "c0000000c001")
    assert run_copy(source_copy, "--url", db_url, "upgrade", HEAD).returncode == 0
    code, state = status(source_copy, db_url)
    assert {rev["revision"]: rev["phase"] for rev in state["pending"]} == {
        "e0000000e001": "pre", "e0000000e002": "pre", "c0000000c001": "post", "c0000000c002": "post"}
    expand = run_copy(source_copy, "--url", db_url, "upgrade", "--phase", "pre")
    assert expand.returncode == 0, expand.stderr
    assert current(source_copy, db_url) == ["e0000000e002"]
    assert status(source_copy, db_url, "--phase", "pre")[0] == 0
    contract = run_copy(source_copy, "--url", db_url, "upgrade", "--phase", "post")
    assert contract.returncode == 0, contract.stderr
    assert sorted(current(source_copy, db_url)) == ["c0000000c002", "e0000000e002"]


def test_two_pre_branches_are_both_taken(source_copy: Path, sqlite_url: str) -> None:
    """Several pending pre-deploy heads: the pre phase goes to each."""
    add(source_copy, "d0000000e001", HEAD, labels=("left",))
    add(source_copy, "d0000000e002", HEAD, labels=("right",))
    add(source_copy, "d0000000c001", ("d0000000e001", "d0000000e002"), phase="post")
    assert run_copy(source_copy, "--url", sqlite_url, "upgrade", HEAD).returncode == 0
    assert run_copy(source_copy, "--url", sqlite_url, "upgrade", "--phase", "pre").returncode == 0
    assert sorted(current(source_copy, sqlite_url)) == ["d0000000e001", "d0000000e002"]


class TestFleets:
    """``fleet upgrade --phase``, ``fleet status --phase pre``: per SQLite file (each target
    read alone) and over the schemas of one PostgreSQL database (read together)."""

    @pytest.fixture
    def history(self, source_copy: Path) -> Path:
        add(source_copy, "b0000000e001", HEAD)
        add(source_copy, "b0000000c001", "b0000000e001", phase="post")
        return source_copy

    def fleet(self, history: Path, *args: str) -> tuple[int, dict]:
        done = run_copy(history, "fleet", *args, "--json")
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)

    def test_a_fleet_runs_each_phase_and_counts_targets_ready(self, history: Path, tmp_path: Path,
                                                               postgresql_url: str) -> None:
        files = [f"sqlite:///{tmp_path / f't{i}.db'}" for i in range(3)]
        schemas = [f"{postgresql_url}&schema=tenant_{i}" if "?" in postgresql_url else f"{postgresql_url}?schema=tenant_{i}"
                   for i in range(3)]
        for url in files + schemas:
            assert run_copy(history, "--url", url, "upgrade", HEAD).returncode == 0
        where = [("--sqlite-glob", str(tmp_path / "t*.db")), ("--url", postgresql_url, "--schemas", "tenant_*")]
        for source in where:
            code, state = self.fleet(history, "status", "--phase", "pre", *source)
            assert code == 1 and state["summary"]["behind"] == 3, state
            code, done = self.fleet(history, "upgrade", "--phase", "pre", *source)
            assert code == 0 and done["summary"]["migrated"] == 3, done
            assert {tuple(row["after"]) for row in done["targets"]} == {("b0000000e001",)}
            code, state = self.fleet(history, "status", "--phase", "pre", *source)
            assert code == 0 and state["summary"]["ready"] == 3 and state["summary"]["behind"] == 0, state
            assert {row["outcome"] for row in state["targets"]} == {"ready"}
            assert self.fleet(history, "status", *source)[0] == 1  # at head it is not
            code, done = self.fleet(history, "upgrade", "--phase", "post", *source)
            assert code == 0 and {tuple(row["after"]) for row in done["targets"]} == {("b0000000c001",)}
            code, state = self.fleet(history, "status", "--phase", "pre", *source)
            assert code == 0 and state["summary"]["at_head"] == 3, state

    def test_phase_with_a_revision_or_a_downgrade_is_refused(self, history: Path, tmp_path: Path) -> None:
        for args in (("upgrade", "+1"), ("downgrade", "-1")):
            done = run_copy(history, "fleet", *args, "--phase", "pre", "--sqlite-glob", str(tmp_path / "*.db"))
            assert done.returncode == 2 and "--phase chooses the revisions" in done.stderr, done.stderr


def test_each_revision_tells_its_phase_in_the_json_log(source_copy: Path, sqlite_url: str) -> None:
    from tests.observe.test_json_output import valid

    add(source_copy, "b0000000e001", HEAD)
    add(source_copy, "b0000000c001", "b0000000e001", phase="post")
    done = run_copy(source_copy, "--url", sqlite_url, "--log-format", "json", "upgrade")
    assert done.returncode == 0, done.stderr
    started = {line["revision"]: line["phase"] for line in map(json.loads, done.stderr.splitlines())
               if valid(line, "event")["event"] == "revision.start"}
    assert started["b0000000e001"] == "pre" and started["b0000000c001"] == "post" and started[HEAD] == "pre"


def test_the_python_api_takes_the_phase(source_copy: Path, sqlite_url: str) -> None:
    """``mypkg.upgrade(url, phase="pre")``, ``Status.ready_for``, ``mypkg.fleet.status(..., phase=)``."""
    import os
    import subprocess
    import sys

    add(source_copy, "b0000000e001", HEAD)
    add(source_copy, "b0000000c001", "b0000000e001", phase="post")
    program = f'''
import json, mypkg, mypkg.fleet
url = {sqlite_url!r}
mypkg.upgrade(url, {HEAD!r})
done = mypkg.upgrade(url, phase="pre")
state = mypkg.status(url)
fleet = mypkg.fleet.status([url], phase="pre")
print(json.dumps([[s.revision for s in done.applied], state.ready_for("pre"), state.at_head,
                  [r.phase for r in state.pending], fleet.ok, [r.outcome for r in fleet.rows]]))
try:
    mypkg.upgrade(url, "head", phase="later")
except mypkg.UsageError as exc:
    print(exc)
'''
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(source_copy)}
    done = subprocess.run([sys.executable, "-c", program], cwd=source_copy, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    first, refused = done.stdout.splitlines()
    assert json.loads(first) == [["b0000000e001"], True, False, ["post"], True, ["ready"]]
    assert refused == "--phase must be pre or post, not 'later'"
