"""PPO learns CartPole-v1: deterministic 20-episode mean >= 475 within 100k steps (seeds 0, 1).

Uses examples/cartpole.yaml's hyperparameters (which stop at the threshold), so each seed
takes a second or two on a 2-core CPU.
"""

from pathlib import Path

import gymnasium as gym
import pytest
import yaml

from daedalus.algos.ppo import PPOConfig, make_ppo_agent, train_ppo
from daedalus.evaluation import evaluate
from daedalus.types import TrainContext

PROFILE = Path(__file__).resolve().parents[2] / "examples" / "cartpole.yaml"


class Sink:
    def log(self, step, metrics):
        pass

    def close(self):
        pass

    def update(self, **kwargs):
        pass


def make_cartpole(seed=None):
    env = gym.make("CartPole-v1")
    if seed is not None:
        env.reset(seed=seed)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_solves_cartpole(seed):
    profile = yaml.safe_load(PROFILE.read_text())["cartpole_ppo"]
    config = PPOConfig(**{**profile["config"], "total_steps": 100_000, "checkpoint_every_steps": 0})
    context = TrainContext(
        profile_id="cartpole_ppo", agent_id="ppo", env_id="CartPole-v1", env_args={}, num_envs=profile["num_envs"],
        seed=seed, vectorization="auto", device="cpu", config=None, make_env=make_cartpole, logger=Sink(),
        progress=Sink(), checkpoint=lambda *args: None,
    )
    env = make_cartpole()
    agent = make_ppo_agent(env.observation_space, env.action_space, config, seed=seed)
    artifacts = {}
    train_ppo(make_cartpole, agent, config, artifacts, None, context)
    assert agent.global_step <= 100_000 + config.num_steps * profile["num_envs"]
    # The periodic evaluation (20 deterministic episodes on separate env copies) reached 475.
    evaluations = artifacts["evaluations"]
    assert evaluations and evaluations[-1]["mean_return"] >= 475, f"seed {seed}: {evaluations[-3:]}"
    # The returned agent is the one that reached it (training stopped there).
    result = evaluate(agent, make_cartpole, n_episodes=20, deterministic=True, seed=10_000 + seed)
    assert result.mean_return == pytest.approx(evaluations[-1]["mean_return"])
