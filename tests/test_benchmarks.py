"""The benchmark cannot rot: a smoke run with tiny sizes, checked for every figure it reports.

The real run (``python benchmarks/run.py``, minutes) is not part of the suite; no
timing is asserted here, only that each measurement and target is produced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_smoke_run_reports_every_measurement_and_target(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--sizes", "1,3", "--repeat", "1",
         "--rows", "2000", "--batch", "500", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert set(results["revisions"]) == {"1", "3"}
    for measured in results["revisions"].values():
        assert set(measured) == {"fresh_upgrade", "noop_upgrade", "status", "current", "help"}
        for by_tool in measured.values():
            assert by_tool["mypkg"] > 0 and by_tool["alembic"] > 0
    for tool in ("mypkg", "alembic", "hand", "import_floor"):
        assert results["batch_copy"][tool] > 0, tool
    assert 0 < results["batch_copy"]["mypkg_rss"] < 1000
    assert results["backfill"]["mypkg"] > 0 and results["backfill"]["mypkg_rss"] > 0
    labels = {check["target"] for check in results["targets"]}
    assert {"mypkg-migrate --help (s)", "batch copy vs hand-written SQL", "batch copy peak RSS (MB)"} <= labels
    assert "targets:" in result.stdout and "ratio" in result.stdout


def test_help_names_the_targets() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--help"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    assert "noop_upgrade N=1000 <= 0.1x Alembic" in result.stdout


def test_the_fleet_benchmark_reports_every_figure_and_ratio(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fleet.py"), "--files", "6", "--alembic-sample", "1",
         "--loop-sample", "2", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert set(figures["seconds"]) == {"one_revision_fleet", "one_revision_xargs", "noop_fleet", "fleet_peak_rss_mb",
                                       "noop_xargs", "status_fleet", "noop_alembic_loop"}
    assert all(value > 0 for value in figures["seconds"].values())
    assert len(figures["ratios"]) == 3 and "ratios:" in result.stdout


def test_the_deploy_phases_benchmark_reports_each_ratio(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "deploy_phases.py"), "--writes", "20", "--repeat", "1",
         "--databases", "sqlite"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines if line.startswith("sqlite ")][:2] == [["sqlite", "INSERT"],
                                                                                       ["sqlite", "UPDATE"]]
    assert any(line.startswith("goal: triggers at most 1.5x") for line in lines)
    (gate,) = [line.split() for line in lines if line.startswith("sqlite ") and len(line.split()) == 4]
    assert float(gate[1]) > 0 and float(gate[2]) > 0 and float(gate[3]) > 0
