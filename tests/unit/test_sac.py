"""SAC: entropy-tuning sign, squashed-Gaussian log-probability, critic target, Polyak target update,
exact checkpoint round trip."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from replay_helpers import fill_replay

from daedalus.algos.sac import SACConfig, make_sac_agent, sac_alpha_loss, sac_update
from daedalus.nn.offpolicy import SquashedGaussianActor

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def filled(config: SACConfig, seed: int = 0):
    agent = make_sac_agent(OBS, ACT, config, seed=seed)
    return agent, fill_replay(agent, seed=seed)


@pytest.mark.parametrize(("entropy", "direction"), [(3.0, -1), (-3.0, +1)])
def test_alpha_decreases_when_entropy_above_target_and_vice_versa(entropy: float, direction: int) -> None:
    # Entropy = -E[log pi]; target entropy -1 (one action dimension).
    log_alpha = torch.nn.Parameter(torch.tensor(0.0))
    optimizer = torch.optim.SGD([log_alpha], lr=0.1)
    log_probs = torch.full((8,), -entropy)
    loss = sac_alpha_loss(log_alpha, log_probs, target_entropy=-1.0)
    loss.backward()
    # d loss / d log_alpha = -(E[log pi] + target) = entropy - target.
    assert log_alpha.grad == pytest.approx(entropy + 1.0)
    optimizer.step()
    assert np.sign(float(log_alpha.detach())) == direction


def test_alpha_moves_the_right_way_inside_sac_update() -> None:
    config = SACConfig(hidden_sizes=[16], batch_size=32, gradient_steps=1, target_entropy=-50.0)  # entropy far above target
    agent, buffer = filled(config)
    sac_update(agent, buffer, config)
    assert float(agent.log_alpha.detach()) < 0.0
    config = SACConfig(hidden_sizes=[16], batch_size=32, gradient_steps=1, target_entropy=50.0)  # far below
    agent, buffer = filled(config)
    sac_update(agent, buffer, config)
    assert float(agent.log_alpha.detach()) > 0.0


def test_squashed_gaussian_log_prob_matches_change_of_variables() -> None:
    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, 2, [16, 16])
    obs = torch.randn(64, 3)
    generator = torch.Generator().manual_seed(1)
    actions, log_probs = actor(obs, generator)
    mean, log_std = actor.distribution(obs)
    pre_squash = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6)).double()
    base = torch.distributions.Normal(mean.double(), log_std.exp().double())
    expected = (base.log_prob(pre_squash) - torch.log1p(-torch.tanh(pre_squash) ** 2)).sum(-1)
    torch.testing.assert_close(log_probs.double(), expected, rtol=1e-3, atol=1e-3)
    assert actions.abs().max() < 1.0
    torch.testing.assert_close(actor.mode(obs), torch.tanh(mean))


def test_critic_targets_update_by_polyak_with_tau() -> None:
    config = SACConfig(hidden_sizes=[8], batch_size=16, tau=0.25)
    agent, buffer = filled(config)
    before = [p.detach().clone() for p in agent.critic_target.parameters()]
    sac_update(agent, buffer, config)
    for old, target, online in zip(before, agent.critic_target.parameters(), agent.critic.parameters(), strict=True):
        torch.testing.assert_close(target, 0.75 * old + 0.25 * online)


def test_actions_are_rescaled_to_box_bounds() -> None:
    agent = make_sac_agent(OBS, ACT, SACConfig(hidden_sizes=[8]), seed=0)
    np.testing.assert_allclose(agent.to_env(np.array([[-1.0], [0.0], [1.0]], np.float32)), [[-2.0], [0.0], [2.0]])
    assert agent.target_entropy == -1.0 and math.isclose(float(agent.log_alpha.detach().exp()), 1.0)


@pytest.mark.parametrize("save_buffer", [False, True])
def test_checkpoint_round_trip_restores_exact_state(save_buffer: bool) -> None:
    config = SACConfig(hidden_sizes=[16], batch_size=16, save_buffer=save_buffer, learning_starts=0)
    agent, buffer = filled(config, seed=2)
    agent.buffer = buffer
    sac_update(agent, buffer, config)
    agent.global_step, agent.num_episodes = 321, 4
    restored = make_sac_agent(OBS, ACT, config, seed=77)
    restored.load(agent.save())
    assert (restored.global_step, restored.num_updates, restored.num_episodes) == (321, 1, 4)
    assert float(restored.log_alpha.detach()) == float(agent.log_alpha.detach())
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored.predict(obs), agent.predict(obs))
    np.testing.assert_array_equal(restored.explore(obs), agent.explore(obs))  # torch generator restored
    if save_buffer:
        assert restored.buffer is not None
        restored_buffer = restored.buffer
    else:
        assert restored.buffer is None
        restored_buffer = copy.deepcopy(buffer)
    # Optimizers, generators and (when saved) the buffer's sampler restored: identical next update.
    sac_update(agent, buffer, config)
    sac_update(restored, restored_buffer, config)
    for a, b in zip(agent.actor.parameters(), restored.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(agent.critic.parameters(), restored.critic.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
