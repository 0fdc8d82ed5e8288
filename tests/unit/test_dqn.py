"""DQN: closed-form gradient step equals the autograd one, targets (terminated vs truncated, Double
DQN), target-network updates (hard and Polyak), epsilon schedule, exact checkpoint round trip."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from daedalus.algos.dqn import (
    DQNConfig,
    dqn_loss,
    dqn_targets,
    dqn_update,
    make_dqn_agent,
    train_dqn,
)
from daedalus.buffers.replay import ReplaySample
from daedalus.errors import ProfileError
from daedalus.nn.offpolicy import polyak_update

SPACE_OBS = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
SPACE_ACT = gym.spaces.Discrete(3)


def agent_and_buffer(config: DQNConfig, seed: int = 0):
    agent = make_dqn_agent(SPACE_OBS, SPACE_ACT, config, seed=seed)
    buffer = agent.make_buffer(1000, 2)
    rng = np.random.default_rng(seed)
    for t in range(100):
        ended = rng.random(2) < 0.1
        buffer.add(rng.normal(size=(2, 4)).astype(np.float32), rng.integers(3, size=2), rng.normal(size=2),
                   ended & (t % 2 == 0), ended & (t % 2 == 1), rng.normal(size=(2, 4)).astype(np.float32))
    return agent, buffer


@pytest.mark.parametrize("double_dqn", [False, True])
def test_closed_form_update_equals_autograd_update(double_dqn: bool) -> None:
    config = DQNConfig(gradient_steps=5, batch_size=16, hidden_sizes=[32, 32], double_dqn=double_dqn, max_grad_norm=0.5)
    fast, buffer = agent_and_buffer(config)
    slow = copy.deepcopy(fast)
    slow_buffer = copy.deepcopy(buffer)
    fast_metrics = dqn_update(fast, buffer, config)
    slow_metrics = dqn_update(slow, slow_buffer, config, loss_fn=dqn_loss)  # autograd path, same batches
    torch.testing.assert_close(fast.q_network.flat, slow.q_network.flat, rtol=1e-5, atol=1e-6)
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(fast.optimizer.state_dict()["state"][0][key], slow.optimizer.state_dict()["state"][0][key], rtol=1e-4, atol=1e-7)
    assert float(fast_metrics["loss/grad_norm"]) > 0 and np.isfinite(float(slow_metrics["loss/td"]))
    # Same columns and, for the same last batch, the same numbers whichever path ran.
    assert sorted(fast_metrics) == sorted(slow_metrics) == ["loss/grad_norm", "loss/q_values", "loss/td", "loss/td_error"]
    for key in fast_metrics:
        torch.testing.assert_close(fast_metrics[key], slow_metrics[key], rtol=1e-4, atol=1e-5)


def test_targets_bootstrap_on_truncation_not_termination() -> None:
    config = DQNConfig(hidden_sizes=[8], gamma=0.9)
    agent = make_dqn_agent(SPACE_OBS, SPACE_ACT, config, seed=0)
    next_obs = torch.randn(3, 4)
    batch = ReplaySample(obs=torch.zeros(3, 4), actions=torch.zeros(3, dtype=torch.int64), rewards=torch.tensor([1.0, 1.0, 1.0]),
                         next_obs=next_obs, terminated=torch.tensor([0.0, 1.0, 0.0]), truncated=torch.tensor([0.0, 0.0, 1.0]),
                         discounts=torch.full((3,), 0.9))
    with torch.no_grad():
        best = agent.target_network(next_obs).amax(-1)
    targets = dqn_targets(agent.q_network, agent.target_network, batch, config)
    torch.testing.assert_close(targets, torch.stack([1 + 0.9 * best[0], torch.tensor(1.0), 1 + 0.9 * best[2]]))
    # Double DQN: the online network picks, the target network values.
    with torch.no_grad():
        agent.target_network.flat.mul_(2.0)
        picks = agent.q_network(next_obs).argmax(-1)
        valued = agent.target_network(next_obs).gather(-1, picks[:, None]).squeeze(-1)
    double = dqn_targets(agent.q_network, agent.target_network, batch, DQNConfig(hidden_sizes=[8], gamma=0.9, double_dqn=True))
    torch.testing.assert_close(double[0], 1 + 0.9 * valued[0])


def test_target_network_hard_and_polyak_updates() -> None:
    agent = make_dqn_agent(SPACE_OBS, SPACE_ACT, DQNConfig(hidden_sizes=[4]), seed=0)
    with torch.no_grad():
        agent.q_network.flat.fill_(2.0)
        agent.target_network.flat.fill_(1.0)
    polyak_update(agent.target_network.parameters(), agent.q_network.parameters(), 0.1)
    torch.testing.assert_close(agent.target_network.flat, torch.full_like(agent.q_network.flat, 1.1))
    polyak_update(agent.target_network.parameters(), agent.q_network.parameters(), 1.0)
    torch.testing.assert_close(agent.target_network.flat, agent.q_network.flat, rtol=0, atol=0)


def test_target_update_interval_in_training_loop() -> None:
    # With learning off (learning_starts beyond the run) the target equals the online net exactly
    # after each target update; with tau < 1 it moves by exactly tau.
    config = DQNConfig(total_steps=40, learning_starts=10_000, target_update_interval_steps=10, tau=1.0, hidden_sizes=[8],
                       eval_every_steps=0, checkpoint_every_steps=0, log_every_steps=1000)
    env = gym.make("CartPole-v1")
    agent = make_dqn_agent(env.observation_space, env.action_space, config, seed=0)
    with torch.no_grad():
        agent.target_network.flat.zero_()
    train_dqn(lambda seed=None: gym.make("CartPole-v1"), agent, config, {})
    torch.testing.assert_close(agent.target_network.flat, agent.q_network.flat, rtol=0, atol=0)


def test_epsilon_schedule_and_validation() -> None:
    config = DQNConfig(total_steps=1000, exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.1, learning_starts=0)
    agent = make_dqn_agent(SPACE_OBS, SPACE_ACT, config, seed=0)
    assert agent.epsilon(0) == 1.0 and agent.epsilon(250) == pytest.approx(0.55) and agent.epsilon(900) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="gradient_steps: 'gradient_steps' must be >= 1"):
        DQNConfig(gradient_steps=0)
    with pytest.raises(ProfileError, match="Discrete"):
        make_dqn_agent(SPACE_OBS, gym.spaces.Box(-1, 1, (2,)), config)


@pytest.mark.parametrize("save_buffer", [False, True])
def test_checkpoint_round_trip_restores_exact_state(save_buffer: bool) -> None:
    config = DQNConfig(gradient_steps=3, batch_size=8, hidden_sizes=[16], save_buffer=save_buffer, learning_starts=0)
    agent, buffer = agent_and_buffer(config, seed=1)
    agent.buffer = buffer
    dqn_update(agent, buffer, config)
    agent.global_step, agent.num_episodes = 1234, 7
    blob = agent.save()
    restored = make_dqn_agent(SPACE_OBS, SPACE_ACT, config, seed=99)
    restored.load(blob)
    assert (restored.global_step, restored.num_updates, restored.num_episodes) == (1234, 1, 7)
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(restored.predict(obs), agent.predict(obs))
    np.testing.assert_array_equal(restored.explore(obs), agent.explore(obs))  # same exploration RNG state
    torch.testing.assert_close(restored.target_network.flat, agent.target_network.flat, rtol=0, atol=0)
    if save_buffer:
        assert restored.buffer is not None
        # Buffer contents and its sampling RNG are restored: the next update is identical.
        dqn_update(agent, buffer, config)
        dqn_update(restored, restored.buffer, config)
        torch.testing.assert_close(restored.q_network.flat, agent.q_network.flat, rtol=0, atol=0)
    else:
        assert restored.buffer is None and not any(k.startswith("buffer/") for k in agent.state_tensors())
        # Optimizer moments and step restored: the same batch gives the same step.
        restored.buffer = copy.deepcopy(buffer)
        dqn_update(agent, buffer, config)
        dqn_update(restored, restored.buffer, config)
        torch.testing.assert_close(restored.q_network.flat, agent.q_network.flat, rtol=0, atol=0)


def test_training_continues_from_a_reloaded_checkpoint_with_its_buffer() -> None:
    config = DQNConfig(total_steps=300, learning_starts=50, train_frequency_steps=50, gradient_steps=2, batch_size=16, hidden_sizes=[16],
                       save_buffer=True, eval_every_steps=0, checkpoint_every_steps=0, log_every_steps=10_000)
    env = gym.make("CartPole-v1")
    agent = make_dqn_agent(env.observation_space, env.action_space, config, seed=0)
    artifacts: dict = {}
    train_dqn(lambda seed=None: gym.make("CartPole-v1"), agent, config, artifacts)
    assert agent.global_step == 300 and agent.num_updates == 5 and len(agent.buffer) == 300
    restored = make_dqn_agent(env.observation_space, env.action_space, DQNConfig(**{**config.__dict__, "total_steps": 600}), seed=1)
    restored.load(agent.save())
    assert len(restored.buffer) == 300
    train_dqn(lambda seed=None: gym.make("CartPole-v1"), restored, restored.config, artifacts)
    # Continued from step 300 with the restored buffer (not a fresh one): 300 more transitions, 6 more updates.
    assert restored.global_step == 600 and restored.num_updates == 11 and len(restored.buffer) == 600
    assert artifacts["time_split"]["steps"] == 600
