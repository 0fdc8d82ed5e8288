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


def test_shared_ppo_on_simple_spread_learns_on_ray_workers(tmp_path: Path, ray_cluster: Any) -> None:
    """examples/multiagent/simple_spread.yaml on 2 Ray workers (4 copies each) beats random play by the
    margin of the local test (tests/slow/test_multiagent_learning.py: -23 per agent after 50k steps)."""
    pytest.importorskip("mpe2")
    example = EXAMPLE.parents[1] / "multiagent" / "simple_spread.yaml"
    run = daedalus.train(example, runs_dir=tmp_path, overrides=[
        "config.total_steps=50000", "config.final_eval_episodes=200", "config.eval_every_steps=0",
        "rollout={backend: ray, num_workers: 2, envs_per_worker: 4, cpus_per_worker: 0.5}",
    ])
    assert run.status == "completed"
    assert json.loads((run.path / "run.json").read_text())["rollout"]["num_workers"] == 2
    assert run.artifacts["final_evaluation"]["policies"]["default"] >= -23.0, run.artifacts["final_evaluation"]
