"""Imitation on a continuous action space: BC and GAIL on Pendulum-v1 from a SAC expert.

The expert is examples/sac_pendulum.yaml stopped at a deterministic 20-episode evaluation of
-150 (6k steps, ~30 s on an idle 2-core CPU); 20 of its greedy episodes are the demonstrations.
Thresholds (the issue's): the run's final deterministic 20-episode evaluation >= -250, 2 seeds
each. GAIL uses examples/imitation/gail_pendulum.yaml (400k steps, no early stop: -207 / -209 on
seeds 0 / 1 measured, ~50 s each; docs/imitation.md says why it does not stop at a target).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import daedalus
from daedalus.api.demos import record_demos

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def pendulum_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 deterministic episodes (reset seeds 0..19) of a SAC expert trained here."""
    runs = tmp_path_factory.mktemp("pendulum-expert")
    expert = daedalus.train(
        EXAMPLES / "sac_pendulum.yaml", runs_dir=runs, overrides=["config.target_return=-150", "config.total_steps=15000"],
    )
    assert expert.status == "completed", expert
    folder = runs / "demos"
    demos = record_demos(expert.path, 20, folder, seed=0)
    assert len(demos) == 20 and demos.mean_return >= -200, demos.episode_returns
    return folder


@pytest.mark.parametrize("seed", [0, 1])
def test_bc_pendulum_from_a_sac_expert(pendulum_demos: Path, tmp_path: Path, seed: int) -> None:
    result = daedalus.train(
        agent_id="bc", env_id="Pendulum-v1", seed=seed, runs_dir=tmp_path / "runs",
        config={"demos": str(pendulum_demos), "total_steps": 4_000, "batch_size": 256, "eval_every_steps": 0, "final_eval_episodes": 20},
    )
    assert result.status == "completed", result
    assert result.final_return is not None and result.final_return >= -250, (seed, result.final_return)


@pytest.mark.parametrize("seed", [0, 1])
def test_gail_pendulum_from_a_sac_expert(pendulum_demos: Path, tmp_path: Path, seed: int) -> None:
    run = daedalus.train(
        EXAMPLES / "imitation" / "gail_pendulum.yaml", runs_dir=tmp_path / "runs",
        overrides=[f"seed={seed}", f"config.demos={pendulum_demos}", "config.checkpoint_every_steps=0"],
    )
    assert run.status == "completed", run.error
    curve = [(e["step"], round(e["mean_return"])) for e in run.artifacts["evaluations"]]
    final = json.loads((run.path / "eval.json").read_text())["latest"]
    assert final["n_episodes"] == 20 and final["deterministic"]
    assert final["mean_return"] >= -250, f"seed {seed}: final {final['mean_return']:.1f}, evaluations {curve}"
