"""TD3: target policy smoothing, delayed actor and target updates, exploration noise, exact
checkpoint round trip."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from replay_helpers import fill_replay

from daedalus.algos.td3 import TD3Config, make_td3_agent, td3_actor_loss, td3_targets, td3_update
from daedalus.buffers.replay import ReplaySample

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)


def filled(config: TD3Config, seed: int = 0):
    agent = make_td3_agent(OBS, ACT, config, seed=seed)
    return agent, fill_replay(agent, seed=seed)


def test_delayed_actor_and_target_updates() -> None:
    config = TD3Config(hidden_sizes=[16], batch_size=16, policy_delay=2, gradient_steps=1, tau=0.5)
    agent, buffer = filled(config)
    actor0 = [p.detach().clone() for p in agent.actor.parameters()]
    critic_target0 = [p.detach().clone() for p in agent.critic_target.parameters()]
    td3_update(agent, buffer, config)  # update 1: critic only
    assert all(torch.equal(a, b) for a, b in zip(actor0, agent.actor.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(critic_target0, agent.critic_target.parameters(), strict=True))
    critic1 = [p.detach().clone() for p in agent.critic.parameters()]
    td3_update(agent, buffer, config)  # update 2: critic, then actor and both targets
    assert not all(torch.equal(a, b) for a, b in zip(actor0, agent.actor.parameters(), strict=True))
    for old, target, online in zip(critic_target0, agent.critic_target.parameters(), agent.critic.parameters(), strict=True):
        torch.testing.assert_close(target, 0.5 * old + 0.5 * online)
    assert not all(torch.equal(a, b) for a, b in zip(critic1, agent.critic.parameters(), strict=True))


def test_target_policy_smoothing_noise_is_clipped() -> None:
    config = TD3Config(hidden_sizes=[8], target_policy_noise=10.0, target_noise_clip=0.05, gamma=1.0)
    agent = make_td3_agent(OBS, ACT, config, seed=0)
    # A critic that returns the first action coordinate makes the smoothed target action visible.
    with torch.no_grad():
        for weight, bias in zip(agent.critic_target.weights, agent.critic_target.biases, strict=True):
            weight.zero_(), bias.zero_()
        agent.critic_target.weights[0][:, 3, 0] = 1.0  # hidden unit 0 = relu(action_0)
        agent.critic_target.weights[1][:, 0, 0] = 1.0
        for p in agent.actor_target.parameters():
            p.zero_()  # the target actor outputs tanh(0) = 0
    next_obs = torch.zeros(4096, 3)
    batch = ReplaySample(obs=next_obs, actions=torch.zeros(4096, 2), rewards=torch.zeros(4096), next_obs=next_obs,
                         terminated=torch.zeros(4096), truncated=torch.zeros(4096), discounts=torch.ones(4096))
    targets = td3_targets(agent, batch, config)
    # Q'(s', a') = relu(a'_0) with a'_0 = clip(noise): never above the clip, and with std 10 the
    # noise is clipped almost always, so about half the targets sit exactly at +0.05.
    assert targets.min() >= 0.0 and targets.max() <= 0.05 + 1e-6
    assert 0.45 < float((targets > 0.05 - 1e-6).float().mean()) < 0.55


def test_actor_loss_uses_first_critic_only_and_leaves_critic_weights_alone() -> None:
    agent = make_td3_agent(OBS, ACT, TD3Config(hidden_sizes=[8]), seed=0)
    obs = torch.randn(5, 3)
    loss, _ = td3_actor_loss(obs, agent)
    with torch.no_grad():
        expected = -agent.critic(torch.cat([obs, agent.actor(obs)], -1))[0].mean()
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.grad is not None for p in agent.actor.parameters())


def test_exploration_noise_and_warm_up() -> None:
    config = TD3Config(hidden_sizes=[8], learning_starts=10, exploration_noise=0.1)
    agent = make_td3_agent(OBS, ACT, config, seed=0)
    obs = np.zeros((2000, 3), np.float32)
    warm = agent.explore(obs)
    assert warm.min() < -0.9 and warm.max() > 0.9  # uniform over [-1, 1]
    agent.global_step = 10
    noisy = agent.explore(obs)
    clean = agent.predict(obs) / 2.0  # back to [-1, 1]
    assert abs(float(np.std(noisy - clean)) - 0.1) < 0.01


@pytest.mark.parametrize("save_buffer", [False, True])
def test_checkpoint_round_trip_restores_exact_state(save_buffer: bool) -> None:
    config = TD3Config(hidden_sizes=[16], batch_size=16, save_buffer=save_buffer, learning_starts=0, policy_delay=1)
    agent, buffer = filled(config, seed=3)
    agent.buffer = buffer
    td3_update(agent, buffer, config)
    agent.global_step = 99
    restored = make_td3_agent(OBS, ACT, config, seed=5)
    restored.load(agent.save())
    assert (restored.global_step, restored.num_updates) == (99, 1)
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored.predict(obs), agent.predict(obs))
    np.testing.assert_array_equal(restored.explore(obs), agent.explore(obs))
    restored_buffer = restored.buffer if save_buffer else copy.deepcopy(buffer)
    assert (restored.buffer is not None) == save_buffer
    td3_update(agent, buffer, config)
    td3_update(restored, restored_buffer, config)
    for a, b in zip(agent.actor_target.parameters(), restored.actor_target.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(agent.critic.parameters(), restored.critic.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
