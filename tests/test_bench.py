"""``warpkit bench`` runs end to end (a smoke run: it measures speed, which tests do not judge)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])  # bicubic: cv2 takes channels in groups of 4
def test_quick_bench_prints_its_tables_and_writes_the_plot(tmp_path, interpolation):
    plot = tmp_path / "bench.png"
    # a subprocess: the benchmark's memory probe changes glibc's malloc settings for its whole process
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--no-latency",
            "--budget",
            "0.01",
            "--interpolation",
            interpolation,
            "--out",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"Forward, float32, {interpolation}, zeros padding" in result.stdout
    for label in ("8x3x64x64", "2x16x56x56", "tps 2x3x64x64"):
        assert f"| {label} |" in result.stdout
    assert plot.stat().st_size > 0
