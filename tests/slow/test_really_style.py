"""examples/really_style/cartpole_dqn.py (ReAllY's README example on SampleManager) learns CartPole on Ray.

The example runs as its own process, a second driver on the session's 2-node Ray cluster
(``RAY_ADDRESS``), exactly as a user runs it; it stops once a greedy 20-episode test reaches 475.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "really_style" / "cartpole_dqn.py"


@pytest.mark.slow
def test_really_style_dqn_learns_cartpole_on_ray(ray_cluster: Any, tmp_path: Path) -> None:
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--backend", "ray", "--seed", "0", "--out", str(tmp_path / "progress")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    summary = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert summary["test_return"] >= 475, result.stdout
    assert summary["steps"] <= 60_000
    files = {p.name for p in (tmp_path / "progress").iterdir()}
    assert f"model_{summary['steps']}.safetensors" in files and "aggregator.csv" in files
    assert any(name.startswith("progress_") and name.endswith(".png") for name in files)
