"""DQN, SAC and TD3 learn (seeds 0 and 1, the example profiles' hyperparameters).

- DQN: CartPole-v1, deterministic 20-episode mean >= 475 within 50k steps (examples/dqn_cartpole.yaml);
- SAC and TD3: Pendulum-v1, deterministic 20-episode mean >= -200 within 20k steps
  (examples/sac_pendulum.yaml, examples/td3_pendulum.yaml).

The profiles stop training at the threshold (``target_return``), so the evaluation asserted on is
the **last periodic evaluation recorded by training** (20 deterministic episodes on separate env
copies), which is also the best one. The returned agent is then re-evaluated to check that it is
that agent. About 1.5-2.5 minutes in all on a 2-core CPU.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

from daedalus.evaluation import evaluate
from daedalus.types import TrainContext

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Sink:
    def log(self, step, metrics):
        pass

    def close(self):
        pass

    def update(self, **kwargs):
        pass


CASES = {
    "dqn": ("dqn_cartpole.yaml", "cartpole_dqn", "DQNConfig", 50_000, 475.0),
    "sac": ("sac_pendulum.yaml", "pendulum_sac", "SACConfig", 20_000, -200.0),
    "td3": ("td3_pendulum.yaml", "pendulum_td3", "TD3Config", 20_000, -200.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("algo", ["dqn", "sac", "td3"])
def test_offpolicy_algorithm_reaches_threshold(algo: str, seed: int) -> None:
    file, profile_id, config_name, budget, threshold = CASES[algo]
    profile = yaml.safe_load((EXAMPLES / file).read_text())[profile_id]
    module = importlib.import_module(f"daedalus.algos.{algo}")
    config = getattr(module, config_name)(**{**profile["config"], "total_steps": budget, "checkpoint_every_steps": 0, "target_return": threshold})
    env_id = profile["env_id"]

    def make_env(env_seed=None):
        return gym.make(env_id)

    context = TrainContext(
        profile_id=profile_id, agent_id=algo, env_id=env_id, env_args={}, num_envs=profile["num_envs"], seed=seed,
        vectorization=profile.get("vectorization", "auto"), device="cpu", config=None, make_env=make_env, logger=Sink(), progress=Sink(),
        checkpoint=lambda *args: None,
    )
    env = make_env()
    agent = getattr(module, f"make_{algo}_agent")(env.observation_space, env.action_space, config, seed=seed)
    artifacts: dict = {}
    getattr(module, f"train_{algo}")(make_env, agent, config, artifacts, None, context)
    evaluations = artifacts["evaluations"]
    assert agent.global_step <= budget
    assert evaluations and evaluations[-1]["mean_return"] >= threshold, f"{algo} seed {seed}: {evaluations[-4:]}"
    result = evaluate(agent, make_env, n_episodes=20, deterministic=True, seed=10_000 + seed)
    assert result.mean_return == pytest.approx(evaluations[-1]["mean_return"])
