"""GAIL and AIRL: the discriminator loss and rewards against hand-computed values, AIRL's shaped
reward with termination masking, the relabel point of the on-policy loop, the saved agent and a
short run through the API (train, then evaluate the run folder)."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

import daedalus
from daedalus.algos.airl import AIRLConfig, airl_logits, airl_reward, make_airl_agent, shaped_reward
from daedalus.algos.common import default_context
from daedalus.algos.gail import (
    GAILConfig,
    TransitionBatch,
    action_features,
    discriminator_loss,
    gail_reward,
    make_gail_agent,
)
from daedalus.algos.on_policy import ActorCriticAgent, train_on_policy
from daedalus.algos.ppo import PPOConfig, make_ppo_agent, ppo_update
from daedalus.demos import Demonstrations, Episode
from daedalus.errors import DaedalusError
from daedalus.rollout.contract import Trajectory

CARTPOLE = gym.make("CartPole-v1")


# --------------------------------------------------------------------------- loss and rewards


def test_discriminator_loss_matches_hand_computed_values() -> None:
    expert, generated = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    loss, metrics = discriminator_loss(expert, generated)
    # -log D on the expert half: softplus(-0) = ln 2, softplus(-2) = ln(1 + e^-2)
    expert_half = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    # -log(1 - D) on the generator half: softplus(0) = ln 2, softplus(-1) = ln(1 + e^-1)
    generator_half = (math.log(2) + math.log(1 + math.exp(-1))) / 2
    assert loss.item() == pytest.approx((expert_half + generator_half) / 2, abs=1e-6)
    assert loss.item() == pytest.approx(0.456621, abs=1e-6)
    # ... which is torch's binary cross-entropy over the whole batch, expert = 1
    bce = F.binary_cross_entropy_with_logits(torch.cat([expert, generated]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert loss.item() == pytest.approx(bce.item(), abs=1e-7)
    assert metrics["disc_acc_expert"].item() == 0.5  # logit 0 is not "expert"
    assert metrics["disc_acc_gen"].item() == 0.5


def test_gail_reward_is_minus_log_one_minus_d() -> None:
    logits = torch.tensor([0.0, 2.0, -1.0])
    expected = [math.log(2), 2 + math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1))]
    assert gail_reward(logits).tolist() == pytest.approx(expected, abs=1e-6)
    assert gail_reward(logits).tolist() == pytest.approx((-torch.log(1 - torch.sigmoid(logits))).tolist(), abs=1e-6)


def test_gail_logit_reward_is_log_d_minus_log_one_minus_d() -> None:
    logits = torch.tensor([-2.0, 0.0, 3.0])
    d = torch.sigmoid(logits)
    assert gail_reward(logits, "logit").tolist() == [-2.0, 0.0, 3.0]
    assert gail_reward(logits, "logit").tolist() == pytest.approx((torch.log(d) - torch.log(1 - d)).tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="unknown GAIL reward 'log'"):
        gail_reward(logits, "log")


def test_airl_shaped_reward_masks_the_potential_after_termination() -> None:
    g, h, h_next = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.0]), torch.tensor([3.0, 4.0])
    f = shaped_reward(g, h, h_next, torch.tensor([0.0, 1.0]), gamma=0.5)
    # exact in float32: 1 + 0.5 * 3 - 0.5 = 2, and after the termination 2 + 0 - 1 = 1
    assert f.tolist() == [2.0, 1.0]


def _batch(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, terminated: list[float], log_probs: list[float]) -> TransitionBatch:
    def t(x: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32))

    return TransitionBatch(t(obs), t(action_features(actions, CARTPOLE.action_space)), t(next_obs), t(terminated), t(log_probs))


def test_airl_logits_and_rewards_through_the_networks() -> None:
    agent = make_airl_agent(CARTPOLE.observation_space, CARTPOLE.action_space, AIRLConfig(demos="x"), seed=0)
    net: Any = agent.discriminator
    rng = np.random.default_rng(0)
    obs, next_obs = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    batch = _batch(obs, np.array([0, 1, 1]), next_obs, [0.0, 1.0, 0.0], [-0.1, -0.7, -2.0])
    with torch.no_grad():
        g, h, h_next = net.reward(batch.obs, batch.actions), net.potential(batch.obs), net.potential(batch.next_obs)
        f = g + 0.95 * h_next * torch.tensor([1.0, 0.0, 1.0]) - h
        assert torch.allclose(airl_logits(0.95)(agent, batch), f - batch.log_probs)
        assert torch.allclose(airl_reward("shaped", 0.95)(agent, batch), f)
        assert torch.allclose(airl_reward("logit", 0.95)(agent, batch), f - batch.log_probs)
        assert torch.allclose(airl_reward("softplus", 0.95)(agent, batch), F.softplus(f - batch.log_probs))
        assert torch.allclose(airl_reward("unshaped", 0.95)(agent, batch), g)
        # a terminated step's next observation does not matter; a truncated one's does
        moved = replace(batch, next_obs=batch.next_obs + 5.0)
        f_moved = airl_reward("shaped", 0.95)(agent, moved)
    assert f_moved[1].item() == pytest.approx(f[1].item(), abs=1e-6)
    assert f_moved[0].item() != pytest.approx(f[0].item(), abs=1e-3)
    # state-only g: the action does not change it
    with torch.no_grad():
        assert torch.allclose(net.reward(batch.obs, 1 - batch.actions), g)


def test_action_features_one_hot_and_clipped_box() -> None:
    assert action_features(np.array([1, 0]), spaces.Discrete(3)).tolist() == [[0, 1, 0], [1, 0, 0]]
    assert action_features(np.array([5, 3]), spaces.Discrete(3, start=3)).tolist() == [[0, 0, 1], [1, 0, 0]]
    box = spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert action_features(np.array([[3.0], [-0.5]]), box).tolist() == [[2.0], [-0.5]]


def test_configs_restate_ppo_and_each_other() -> None:
    """GAIL and AIRL restate PPO's fields (one level of inheritance): same names and defaults."""
    gail, airl = ({f.name: f.default_factory() if callable(f.default_factory) else f.default for f in fields(c)} for c in (GAILConfig, AIRLConfig))
    ppo = {f.name: f.default_factory() if callable(f.default_factory) else f.default for f in fields(PPOConfig)}
    assert {k: gail[k] for k in ppo} == ppo
    own = {"disc_grad_penalty", "reward"}  # GAIL's own (AIRL's reward has other choices and another default)
    assert {k: airl[k] for k in gail if k not in own} == {k: v for k, v in gail.items() if k not in own}


# --------------------------------------------------------------------------- the relabel point


class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append((step, dict(metrics)))

    def close(self) -> None: ...

    def update(self, **kwargs: Any) -> None: ...


def test_relabel_replaces_learning_rewards_but_not_logged_returns() -> None:
    config = PPOConfig(
        total_steps=2048, num_steps=32, gamma=0.0, gae_lambda=0.0, num_minibatches=1, update_epochs=1,
        eval_every_steps=0, final_eval_episodes=0, checkpoint_every_steps=0, log_every_steps=256,
    )
    agent = make_ppo_agent(CARTPOLE.observation_space, CARTPOLE.action_space, config, seed=0)
    artifacts: dict[str, Any] = {}
    logger = _Recorder()
    context = replace(default_context("ppo", lambda seed: gym.make("CartPole-v1"), artifacts, None, num_envs=8), logger=logger)
    seen: list[Trajectory] = []
    returns: list[torch.Tensor] = []

    def reward_fn(trajectory: Trajectory) -> tuple[np.ndarray, dict[str, float]]:
        seen.append(trajectory)
        return np.full_like(trajectory.rewards, 7.0), {"test/relabelled": 1.0}

    def update(agent_: ActorCriticAgent, batch: Any, progress_remaining: float) -> dict[str, float]:
        returns.append(batch.returns.clone())
        return ppo_update(agent_, batch, config, config.clip_coef)

    train_on_policy(lambda seed: gym.make("CartPole-v1"), agent, config, artifacts, None, context, update, reward_fn=reward_fn)
    assert len(seen) == len(returns) == 8
    # gamma = 0, lambda = 0: every return is the step's own reward, the relabelled 7 (the env gives 1)
    assert all(torch.allclose(r, torch.full_like(r, 7.0)) for r in returns)
    # the trajectory keeps the env's rewards, and the logged episode returns are the env's:
    # CartPole pays 1 per step, so an episode's return is its length
    assert all((t.rewards == 1.0).all() for t in seen)
    ended = np.concatenate([t.episode_returns for t in seen])
    assert len(ended) > 0 and np.array_equal(ended, np.concatenate([t.episode_lengths for t in seen]).astype(float))
    logged = [m for _, m in logger.rows if "charts/episode_return" in m]
    assert logged and all(m["charts/episode_return"] <= 500 and m["test/relabelled"] == 1.0 for m in logged)
    assert max(m["charts/episode_return"] for m in logged) <= ended.max()


# --------------------------------------------------------------------------- the agent and a short run


def test_saved_agent_holds_generator_and_discriminator() -> None:
    config = GAILConfig(demos="x")
    agent = make_gail_agent(CARTPOLE.observation_space, CARTPOLE.action_space, config, seed=0)
    other = make_gail_agent(CARTPOLE.observation_space, CARTPOLE.action_space, config, seed=1)
    other.load(agent.save())
    for key, value in agent.discriminator.state_dict().items():
        assert torch.equal(value, other.discriminator.state_dict()[key])
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    assert np.array_equal(agent.predict(obs), other.predict(obs))
    # the generator's tensors are a PPO agent's: a GAIL checkpoint loads into PPO as is
    ppo = make_ppo_agent(CARTPOLE.observation_space, CARTPOLE.action_space, PPOConfig(), seed=2)
    ppo.load_state(agent.state_tensors(), agent.state_json())
    assert np.array_equal(ppo.predict(obs), agent.predict(obs))


def _heuristic_demos(folder: Path, episodes: int = 3) -> Path:
    """Demonstrations from a hand-written CartPole controller (push towards where the pole leans)."""
    env = gym.make("CartPole-v1", max_episode_steps=100)
    recorded = []
    for index in range(episodes):
        obs, _ = env.reset(seed=index)
        observations, actions, rewards = [obs], [], []
        while True:
            action = int(obs[2] + 0.5 * obs[3] > 0)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            if terminated or truncated:
                break
        recorded.append(Episode(np.array(observations), np.array(actions), np.array(rewards), terminated, truncated))
    return Demonstrations.from_episodes(recorded, env.observation_space, env.action_space).save(folder)


@pytest.mark.parametrize("agent_id", ["gail", "airl"])
def test_short_run_trains_logs_and_evaluates(tmp_path: Path, agent_id: str) -> None:
    _heuristic_demos(tmp_path / "demos")
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        f"short:\n  agent_id: {agent_id}\n  env_id: CartPole-v1\n  num_envs: 4\n  seed: 0\n"
        "  config: {demos: demos, total_steps: 1024, num_steps: 32, disc_batch_size: 64, disc_updates_per_round: 2,\n"
        "           eval_every_steps: 512, eval_episodes: 2, final_eval_episodes: 2, log_every_steps: 256, checkpoint_every_steps: 512}\n"
    )
    run = daedalus.train(profile, runs_dir=tmp_path / "runs")
    assert run.status == "completed", run.error
    header = (run.path / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in ("disc_loss", "disc_acc_expert", "disc_acc_gen", "reward_mean"):
        assert f"{agent_id}/{name}" in header
    assert run.artifacts["demonstrations"]["episodes"] == 3
    # every checkpoint holds the discriminator, and the run folder evaluates like any other
    for checkpoint in ("step-512", "best", "final"):
        loaded = daedalus.load_run(run.path, checkpoint=checkpoint).agent
        assert loaded.num_disc_updates > 0
    result, _ = daedalus.api.evaluate_run(run.path, episodes=2)
    assert result.n_episodes == 2


def test_missing_demonstrations_say_how_to_make_them(tmp_path: Path) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text("p:\n  agent_id: gail\n  env_id: CartPole-v1\n  config: {demos: nowhere, total_steps: 256}\n")
    run = daedalus.train(profile, runs_dir=tmp_path / "runs")
    assert run.status == "failed" and run.error is not None and "daedalus demos record" in run.error
    profile.write_text("p:\n  agent_id: gail\n  env_id: CartPole-v1\n  config: {total_steps: 256}\n")
    with pytest.raises(DaedalusError, match="config.demos"):
        daedalus.train(profile, runs_dir=tmp_path / "runs")


def test_resume_continues_exactly(tmp_path: Path) -> None:
    """Trained to 512 steps then resumed to 1024 = trained to 1024 in one go (generator, discriminator)."""
    from safetensors.torch import load_file

    demos = _heuristic_demos(tmp_path / "demos")
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "p:\n  agent_id: gail\n  env_id: CartPole-v1\n  num_envs: 4\n  seed: 3\n"
        f"  config: {{demos: '{demos}', total_steps: 1024, num_steps: 32, anneal_lr: false, disc_batch_size: 64,\n"
        "           disc_grad_penalty: 1.0, eval_every_steps: 0, final_eval_episodes: 0, log_every_steps: 256, checkpoint_every_steps: 0}\n"
    )
    whole = daedalus.train(profile, runs_dir=tmp_path / "whole")
    half = daedalus.train(profile, runs_dir=tmp_path / "half", overrides=["config.total_steps=512"])
    resumed = daedalus.resume(half.path, total_steps=1024)
    assert whole.status == resumed.status == "completed" and resumed.steps == whole.steps == 1024
    expected = load_file(str(whole.path / "checkpoints" / "final" / "weights.safetensors"))
    got = load_file(str(resumed.path / "checkpoints" / "final" / "weights.safetensors"))
    assert any(key.startswith("discriminator/") for key in expected) and expected.keys() == got.keys()
    for key, value in expected.items():
        assert torch.equal(value, got[key]), key


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "imitation"


@pytest.mark.parametrize("example", ["gail_cartpole.yaml", "airl_cartpole.yaml"])
def test_example_profiles_train_and_evaluate_through_the_cli(tmp_path: Path, example: str) -> None:
    """The example profiles, shortened, through ``daedalus train`` and ``daedalus evaluate RUN``."""
    import os
    import subprocess
    import sys

    demos = _heuristic_demos(tmp_path / "demos")
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}

    def cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "daedalus", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    overrides = [f"config.demos={demos}", "total_steps=512", "num_episodes=3", "eval_every_steps=0", "final_eval_episodes=2"]
    cli("train", str(EXAMPLES / example), "--runs-dir", "runs", *(arg for o in overrides for arg in ("--set", o)))
    (run,) = (tmp_path / "runs").glob(example.removesuffix(".yaml") + "-*")
    assert "over 2 episodes (deterministic)" in cli("evaluate", str(run), "--episodes", "2")


def test_disc_init_torch_is_pytorchs_default_and_seeded() -> None:
    from daedalus.algos.gail import init_discriminator

    env = gym.make("CartPole-v1")
    agents = [make_airl_agent(env.observation_space, env.action_space, AIRLConfig(disc_init=init), seed=3) for init in ("torch", "torch", "orthogonal")]
    torch_init, again, orthogonal = (dict(a.discriminator.named_parameters()) for a in agents)
    assert all(torch.equal(torch_init[k], again[k]) for k in torch_init)  # seeded
    assert not torch.equal(torch_init["reward_head.weight"], orthogonal["reward_head.weight"])
    for name, layer in agents[0].discriminator.named_modules():
        if isinstance(layer, torch.nn.Linear):
            bound = 1 / math.sqrt(layer.in_features)  # kaiming_uniform(a=sqrt(5)) and the bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound, name
    # the orthogonal head (std 1.0) has weights outside that bound
    assert orthogonal["reward_head.weight"].abs().max() > 1 / math.sqrt(64)
    with pytest.raises(ValueError, match="unknown disc_init 'xavier'"):
        init_discriminator(agents[0].discriminator, "xavier")
