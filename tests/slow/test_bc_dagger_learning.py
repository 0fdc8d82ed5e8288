"""Imitation learning thresholds (deterministic 20-episode evaluation, the run's final evaluation):

- BC from 10 episodes of the session's PPO CartPole expert reaches >= 475;
- DAgger (no initial demonstrations) reaches >= 475 within 2,000 expert-labelled steps;
- (BC and GAIL on Pendulum-v1: tests/slow/test_pendulum_imitation.py.)
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import daedalus
from daedalus.api.demos import record_demos

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def cartpole_demos(cartpole_expert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 deterministic episodes of the expert (episode i reset with seed i)."""
    folder = tmp_path_factory.mktemp("demos") / "cartpole"
    demos = record_demos(cartpole_expert, 10, folder, seed=0)
    assert len(demos) == 10 and demos.mean_return >= 475
    return folder


@pytest.mark.parametrize("seed", [0, 1])
def test_bc_from_ten_expert_episodes(cartpole_demos: Path, workdir: Path, seed: int) -> None:
    result = daedalus.train(
        agent_id="bc", env_id="CartPole-v1", seed=seed, runs_dir=workdir / "runs",
        config={"demos": str(cartpole_demos), "total_steps": 2_000, "eval_every_steps": 0, "final_eval_episodes": 20},
    )
    assert result.status == "completed" and result.steps == 2_000, result
    assert result.final_return is not None and result.final_return >= 475, result.final_return


@pytest.mark.parametrize("seed", [0, 1])
def test_dagger_within_2000_expert_labels(cartpole_expert: Path, workdir: Path, seed: int) -> None:
    result = daedalus.train(
        agent_id="dagger", env_id="CartPole-v1", seed=seed, runs_dir=workdir / "runs",
        config={
            "expert": str(cartpole_expert), "total_expert_labels": 2_000, "steps_per_round": 250, "beta_rounds": 4,
            "updates_per_round": 250, "eval_every_steps": 0, "final_eval_episodes": 20,
        },
    )
    assert result.status == "completed", result
    with (result.path / "metrics.csv").open() as handle:
        labels = [float(row["dagger/expert_labels"]) for row in csv.DictReader(handle) if row.get("dagger/expert_labels")]
    assert labels and labels[-1] <= 2_000
    assert result.final_return is not None and result.final_return >= 475, result.final_return
