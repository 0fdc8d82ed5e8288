"""simple_spread (mpe2, 3 agents, max_cycles 25) with one shared PPO policy learns: after 50k env
steps, the deterministic per-agent return over 200 seeded episodes beats a uniformly random policy.

Random, measured with the same evaluation (200 episodes): -25.9 per agent with the final
evaluation's seeds (100000+), -27.0 with seeds 0+ (the issue quotes -27.4). Trained, 2026-11-26 on
this 2-core machine: -20.8 (seed 0) and -21.0 (seed 1) at 50k steps, -18.6 / -19.2 at 100k, so
about 5 better than random. The test asks for -23 (3 to 4 above random, 2.5 below what training
reaches); ~25 s a seed.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import daedalus
from daedalus.api.resolve import load
from daedalus.rollout.multiagent import evaluate_policies
from daedalus.rollout.policies import RandomPolicy

pytestmark = pytest.mark.slow
pytest.importorskip("mpe2")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multiagent" / "simple_spread.yaml"
RANDOM_PER_AGENT = -26.0
THRESHOLD = -23.0


def test_random_per_agent_return_is_what_the_threshold_assumes() -> None:
    (resolved,) = load(EXAMPLE)
    assert resolved.groups is not None
    policies = {name: RandomPolicy(resolved.group_spaces[name][1], seed=0) for name in resolved.groups}
    result = evaluate_policies(SimpleNamespace(make_env=resolved.make_env), resolved.groups, policies, 200, True, 100_000)
    assert result.policy_means()["default"] == pytest.approx(RANDOM_PER_AGENT, abs=1.0)
    assert result.policy_means()["default"] < THRESHOLD - 2


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_ppo_beats_random_on_simple_spread(workdir: Path, seed: int) -> None:
    run = daedalus.train(
        EXAMPLE, runs_dir=workdir / "runs",
        overrides=["config.total_steps=50000", f"seed={seed}", "config.final_eval_episodes=200", "config.eval_every_steps=0"],
    )
    assert run.status == "completed"
    evaluation = run.artifacts["final_evaluation"]
    per_agent = evaluation["policies"]["default"]
    assert per_agent >= THRESHOLD, evaluation
    assert evaluation["episodes"] == 200
