"""PPO on CartPole-v1 with experience from 2 Ray workers (examples/ray/cartpole_ppo.yaml) reaches
475, on the session's real Ray cluster (tests/conftest.py ``ray_cluster``).

Measured 2026-11-26 on this 2-core machine: see the assertion's comment; about 20 s a seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import daedalus

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
pytest.importorskip("ray")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray" / "cartpole_ppo.yaml"


@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_on_two_ray_workers_reaches_475(tmp_path: Path, seed: int, ray_cluster: Any) -> None:
    run = daedalus.train(EXAMPLE, runs_dir=tmp_path, overrides=[f"seed={seed}"])
    assert run.status == "completed"
    record = json.loads((run.path / "run.json").read_text())
    assert record["rollout"]["backend"] == "ray" and record["rollout"]["num_workers"] == 2
    assert record["rollout"]["restarts"] == 0
    best = max(e["mean_return"] for e in run.artifacts["evaluations"])
    final = json.loads((run.path / "eval.json").read_text())["latest"]
    assert best >= 475, run.artifacts["evaluations"]
    assert final["mean_return"] >= 475, f"seed {seed}: final {final['mean_return']}"
