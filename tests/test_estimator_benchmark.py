"""benchmarks/estimators.py still runs and keeps its output contract (the figures themselves are measured by
running it, never asserted here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_estimator_benchmark_prints_cold_start_steady_state_and_the_last_line():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "estimators.py"), "--archs", "40",
                          "--torch-archs", "1"], capture_output=True, text=True, env=env, timeout=300, check=True)
    lines = out.stdout.strip().splitlines()
    assert re.fullmatch(r"archs_per_s=\d+\.\d speedup_vs_torch=\d+\.\d", lines[-1])
    assert re.search(r"cold start: the first 40 archs from empty caches", out.stdout)
    assert re.search(r"steady state: the next 40 archs", out.stdout)
    steady = float(re.search(r"steady state: .*?\(([\d.]+) archs/s", out.stdout).group(1))
    assert float(lines[-1].split()[0].split("=")[1]) == steady  # the last line is the steady state
