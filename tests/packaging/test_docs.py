"""The guides cannot drift: the site builds with --strict (a broken link fails), every page
is in it, the Python API example runs as written, and the Portuguese front page has the
English one's sections, commands and guides."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

NAV = [page for entry in yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"] for page in entry.values()]
README = (REPO / "README.md").read_text()
PORTUGUESE = (REPO / "README.pt-BR.md").read_text()


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                            "-d", str(tmp_path / "site")], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "python-api" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The check above can fail: the same build with one page linking nowhere."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in (REPO / "docs").glob("*.md"):
        (docs / page.name).write_text(page.read_text())
    (docs / "lint.md").write_text((docs / "lint.md").read_text() + "\n[gone](no-such-page.md)\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((REPO / "mkdocs.yml").read_text())
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                            "-d", str(tmp_path / "site")], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode != 0 and "no-such-page.md" in built.stderr


def test_every_guide_is_in_the_site_and_linked_from_both_front_pages() -> None:
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert sorted(NAV) == pages
    guides = {p for p in pages if p != "index.md"}
    assert set(re.findall(r"\(docs/([\w-]+\.md)\)", README)) == guides
    assert set(re.findall(r"\(docs/([\w-]+\.md)\)", PORTUGUESE)) == guides


def test_the_python_api_example_runs_as_written(tmp_path: Path) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "python-api.md").read_text(), flags=re.S)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    ran = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert "CREATE TABLE my_table" in ran.stdout and (tmp_path / "app.db").is_file()


def headings(text: str, level: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(level + " ")]


def commands(text: str) -> set[str]:
    """The subcommands a page shows in its code blocks."""
    blocks = re.findall(r"```(?:bash|console)\n(.*?)```", text, flags=re.S)
    return {m for block in blocks for m in re.findall(r"mypkg-migrate(?: --url \S+)? ([a-z]+)", block)}


def test_the_portuguese_front_page_has_the_same_sections_and_commands() -> None:
    assert len(headings(PORTUGUESE, "##")) == len(headings(README, "##"))
    # What a user types (the code in each command heading) is the same in both; the words are
    # Portuguese: no heading is left in English.
    ours, theirs = headings(README, "###"), headings(PORTUGUESE, "###")
    assert [re.findall(r"`[^`]+`", h) for h in theirs] == [re.findall(r"`[^`]+`", h) for h in ours]
    assert not set(ours) & set(theirs + headings(PORTUGUESE, "##"))
    words = lambda h: re.sub(r"`[^`]+`", "", h).strip("#— ,:")  # noqa: E731
    assert all(words(h) for h in theirs), [h for h in theirs if not words(h)]


def test_the_front_page_stays_a_front_page_and_every_guide_is_on_the_site_home() -> None:
    assert len(README.splitlines()) <= 350
    home = (REPO / "docs" / "index.md").read_text()
    guides = {p.name for p in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert set(re.findall(r"\]\(([\w-]+\.md)\)", home)) == guides


def test_sample_outputs_show_the_checksums_the_scripts_have() -> None:
    """A sample ``history --applied`` line carries the script's sha256 to 12 characters."""
    import hashlib

    shipped = {path.name.split("_")[4]: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
               for path in (REPO / "alembic" / "versions").glob("*.py")}
    pages = [REPO / "README.md", REPO / "README.pt-BR.md", *(REPO / "docs").glob("*.md")]
    found = [(page.name, rev, sha) for page in pages
             for rev, sha in re.findall(r"\b([0-9a-f]{12})\s+(?:upgrade|downgrade)\b.*?sha256 ([0-9a-f]{12})",
                                        page.read_text())]
    assert found, "no sample to check: the test proves nothing"
    assert [f for f in found if shipped.get(f[1]) != f[2]] == []
    assert commands(README) <= commands(PORTUGUESE)
    assert {"upgrade", "downgrade", "status", "stamp", "verify", "repair", "lint", "check"} <= commands(PORTUGUESE)


def test_each_changelog_section_has_each_heading_once() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    for release in re.split(r"(?m)^## ", changelog)[1:]:
        found = re.findall(r"(?m)^### (.+)$", release)
        assert len(found) == len(set(found)), release.splitlines()[0]
