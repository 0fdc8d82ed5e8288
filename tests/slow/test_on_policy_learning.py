"""PPO and A2C learn CartPole-v1 from their example profiles, through the Python API.

Each run is a real run folder; the assertion is on the deterministic 20-episode
evaluations recorded during training and on the final evaluation written to eval.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import daedalus

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_reaches_475_within_100k_steps(tmp_path: Path, seed: int) -> None:
    run = daedalus.train(EXAMPLES / "cartpole.yaml", runs_dir=tmp_path, overrides=[f"seed={seed}"])
    assert run.status == "completed" and run.steps <= 100_000
    first = next(e for e in run.artifacts["evaluations"] if e["mean_return"] >= 475)
    assert first["step"] <= 100_000
    final = json.loads((run.path / "eval.json").read_text())["latest"]
    assert final["n_episodes"] == 20 and final["deterministic"]
    assert final["mean_return"] >= 475, f"seed {seed}: final {final['mean_return']}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_a2c_reaches_475(tmp_path: Path, seed: int) -> None:
    run = daedalus.train(EXAMPLES / "a2c_cartpole.yaml", runs_dir=tmp_path, overrides=[f"seed={seed}"])
    assert run.status == "completed"
    best = max(e["mean_return"] for e in run.artifacts["evaluations"])
    assert best >= 475, f"seed {seed}: {run.artifacts['evaluations'][-3:]}"
    final = json.loads((run.path / "eval.json").read_text())["latest"]
    assert final["mean_return"] >= 475, f"seed {seed}: final {final['mean_return']}"
