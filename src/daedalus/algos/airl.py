"""Adversarial Inverse Reinforcement Learning (AIRL), Fu, Luo & Levine 2018.

AIRL is GAIL with a discriminator of a special form. A reward ``g(s)`` (``g(s, a)`` when
``state_only`` is off) and a potential ``h(s)`` give the shaped reward

    f(s, a, s') = g(s) + gamma * h(s') * (1 - terminated) - h(s)

(no potential after a termination; after a truncation ``s'`` is the real final observation and
``h(s')`` counts), and the discriminator is ``D = exp(f) / (exp(f) + pi(a|s))``, whose logit is
``f(s, a, s') - log pi(a|s)``: it is trained with GAIL's binary cross-entropy, expert = 1. The
policy's ``log pi(a|s)`` is the generator's, taken from the rollout (the collection policy is the
current one: the discriminator learns before PPO updates) and computed for expert actions.

The generator (PPO) learns from ``config.reward``:

- ``shaped`` (default): ``f(s, a, s')``, imitation's ``reward_train``;
- ``logit``: ``f - log pi(a|s) = log D - log(1 - D)``, the paper's reward (``f`` plus an entropy
  bonus);
- ``softplus``: ``-log(1 - D) = softplus(f - log pi)``, GAIL's reward made from AIRL's
  discriminator. It is never negative: on an env whose episodes end early (CartPole), the others,
  mostly negative on the generator's steps, teach PPO to end episodes at once;
- ``unshaped``: ``g(s)`` alone, the reward AIRL recovers, meant for re-training a policy.

The agent, the expert data and the training round are GAIL's (:mod:`daedalus.algos.gail`:
:class:`~daedalus.algos.gail.AdversarialAgent`, :func:`~daedalus.algos.gail.train_adversarial`);
this file holds what is AIRL's own: config → reward network → logits and rewards → registration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from daedalus.algos.gail import (
    DISC_INITS,
    AdversarialAgent,
    TransitionBatch,
    check_demos_given,
    generator_config,
    init_discriminator,
    train_adversarial,
)
from daedalus.algos.on_policy import ActorCriticAgent, OnPolicyConfig
from daedalus.algos.ppo import ppo_optimizer
from daedalus.nn.distributions import action_dim
from daedalus.nn.networks import ACTIVATIONS, layer_init, mlp
from daedalus.params import AT_LEAST_ONE, POSITIVE, param
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = ["AGENT_SPEC", "AIRLConfig", "AIRLRewardNet", "airl_logits", "airl_reward", "make_airl_agent", "shaped_reward", "train_airl"]

REWARDS = ("shaped", "logit", "softplus", "unshaped")


# --------------------------------------------------------------------------- config


@dataclass
class AIRLConfig(OnPolicyConfig):
    """AIRL: PPO's hyperparameters (the generator), the demonstrations, the reward network.

    PPO's fields and the demonstration / discriminator fields are GAIL's (restated, not inherited:
    one level of inheritance; a unit test keeps them equal to
    :class:`~daedalus.algos.gail.GAILConfig`'s).
    """

    # ---- the generator: PPO (same names, defaults and meaning as PPOConfig)
    adam_eps: float = param(1e-5, "Adam epsilon (1e-5 as in the PPO reference code, CleanRL and SB3).", POSITIVE)
    num_minibatches: int = param(4, "Minibatches per epoch; minibatch size = rollout size / num_minibatches.", AT_LEAST_ONE)
    update_epochs: int = param(4, "Passes over each rollout (K epochs in the paper).", AT_LEAST_ONE)
    clip_coef: float = param(0.2, "Clipping range epsilon of the surrogate objective (initial value when anneal_clip).", POSITIVE)
    anneal_clip: bool = param(False, "Clip range schedule: decay clip_coef linearly to 0 over total_steps (SB3's lin_0.2).")
    clip_vloss: bool = param(False, "Clip the value update around the old value estimate (with clip_coef).")
    target_kl: float | None = param(None, "Stop the epochs of an update early once the approximate KL exceeds this; null disables.", POSITIVE)
    # ---- the demonstrations (as GAILConfig)
    demos: str = param("", "Demonstrations folder (daedalus demos record RUN -o DIR), relative to the profile file. Required.")
    num_episodes: int | None = param(None, "Use the first this many demonstration episodes; null: all of them.", AT_LEAST_ONE)
    # ---- the discriminator (as GAILConfig; here the networks g and h)
    disc_hidden_sizes: list[int] = param([64, 64], "Hidden layer sizes of the reward network g and of the potential h.", AT_LEAST_ONE)
    disc_activation: str = param("tanh", f"Hidden activation of g and h: one of {sorted(ACTIVATIONS)}.", choices=sorted(ACTIVATIONS))
    disc_init: str = param(
        "orthogonal",
        "Initial weights of g and h: 'orthogonal' (Daedalus's layer_init, as the policy's) or 'torch' (PyTorch's "
        "default nn.Linear init, what imitation's reward nets use).",
        choices=list(DISC_INITS),
    )
    disc_learning_rate: float = param(3e-4, "Adam learning rate of the discriminator (g and h).", POSITIVE)
    disc_updates_per_round: int = param(4, "Discriminator gradient steps after each rollout (imitation's n_disc_updates_per_round).", AT_LEAST_ONE)
    disc_batch_size: int = param(256, "Expert transitions per discriminator step, with as many of the rollout's (imitation's demo_batch_size).", AT_LEAST_ONE)
    # ---- AIRL's own
    state_only: bool = param(True, "The reward g reads the state only, g(s) (what makes the recovered reward transfer); false: g(s, a).")
    reward: str = param(
        "shaped",
        "What the generator learns from: 'shaped' f(s,a,s'), 'logit' f - log pi(a|s), 'softplus' -log(1 - D) = softplus(f - log pi) "
        "(never negative: for envs whose episodes end early, like CartPole), 'unshaped' g.",
        choices=list(REWARDS),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.disc_hidden_sizes = [int(size) for size in self.disc_hidden_sizes]


# --------------------------------------------------------------------------- reward network


class AIRLRewardNet(nn.Module):
    """The reward ``g`` and the potential ``h``, two MLPs (see :func:`shaped_reward`)."""

    def __init__(self, obs_dim: int, action_space: spaces.Space[Any], hidden_sizes: list[int], activation: str, state_only: bool) -> None:
        super().__init__()
        self.state_only = state_only
        reward_inputs = obs_dim + (0 if state_only else action_dim(action_space))
        self.reward_trunk = mlp(reward_inputs, hidden_sizes, activation)
        self.reward_head = layer_init(nn.Linear(hidden_sizes[-1] if hidden_sizes else reward_inputs, 1), std=1.0)
        self.potential_trunk = mlp(obs_dim, hidden_sizes, activation)
        self.potential_head = layer_init(nn.Linear(hidden_sizes[-1] if hidden_sizes else obs_dim, 1), std=1.0)

    def reward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``g(s)`` (or ``g(s, a)``), ``(batch,)``; ``actions`` are :func:`~daedalus.algos.gail.action_features`."""
        inputs = obs if self.state_only else torch.cat([obs, actions], dim=-1)
        return self.reward_head(self.reward_trunk(inputs)).squeeze(-1)

    def potential(self, obs: torch.Tensor) -> torch.Tensor:
        """``h(s)``, ``(batch,)``."""
        return self.potential_head(self.potential_trunk(obs)).squeeze(-1)


def shaped_reward(reward: torch.Tensor, potential: torch.Tensor, next_potential: torch.Tensor, terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """``f = g(s) + gamma * h(s') * (1 - terminated) - h(s)``: no potential after a termination."""
    return reward + gamma * next_potential * (1.0 - terminated) - potential


# --------------------------------------------------------------------------- logits and rewards


def _net(agent: AdversarialAgent) -> AIRLRewardNet:
    net = agent.discriminator
    assert isinstance(net, AIRLRewardNet), f"an AIRL agent's discriminator is an AIRLRewardNet, not {type(net).__name__}"
    return net


def _shaped(agent: AdversarialAgent, batch: TransitionBatch, gamma: float) -> torch.Tensor:
    net = _net(agent)
    return shaped_reward(net.reward(batch.obs, batch.actions), net.potential(batch.obs), net.potential(batch.next_obs), batch.terminated, gamma)


def airl_logits(gamma: float) -> Callable[[AdversarialAgent, TransitionBatch], torch.Tensor]:
    """The discriminator's logit ``f(s, a, s') - log pi(a|s)`` (high = expert)."""
    return lambda agent, batch: _shaped(agent, batch, gamma) - batch.log_probs


def airl_reward(kind: str, gamma: float) -> Callable[[AdversarialAgent, TransitionBatch], torch.Tensor]:
    """The generator's reward: ``shaped`` f, ``logit`` f - log pi, ``unshaped`` g (module docstring)."""
    if kind == "shaped":
        return lambda agent, batch: _shaped(agent, batch, gamma)
    if kind == "logit":
        return airl_logits(gamma)
    if kind == "softplus":
        logits = airl_logits(gamma)
        return lambda agent, batch: F.softplus(logits(agent, batch))
    if kind == "unshaped":
        return lambda agent, batch: _net(agent).reward(batch.obs, batch.actions)
    raise ValueError(f"unknown AIRL reward {kind!r}; choose one of {REWARDS}")


# --------------------------------------------------------------------------- agent and training


def make_airl_agent(
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    config: AIRLConfig | None = None,
    device: str = "cpu",
    seed: int | None = None,
) -> AdversarialAgent:
    """The registered agent factory: a PPO generator and an :class:`AIRLRewardNet` as discriminator."""
    config = config or AIRLConfig()
    generator = ActorCriticAgent(
        observation_space, action_space, generator_config(config), device=device, seed=seed, algo="airl", make_optimizer=ppo_optimizer,
    )
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's global RNG untouched
        if seed is not None:
            torch.manual_seed(seed + 1)
        net = AIRLRewardNet(int(np.prod(generator.obs_shape)), action_space, config.disc_hidden_sizes, config.disc_activation, config.state_only)
        init_discriminator(net, config.disc_init)
    return AdversarialAgent(generator, net, config.disc_learning_rate, seed)


def train_airl(
    env_factory: Callable[[int | None], Any],
    agent: AdversarialAgent,
    config: AIRLConfig,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
) -> AdversarialAgent:
    """Train ``agent`` with AIRL until ``config.total_steps`` (GAIL's round with AIRL's discriminator)."""
    return train_adversarial(
        env_factory, agent, config, artifacts, save_callback, context,
        logits=airl_logits(config.gamma), reward=airl_reward(config.reward, config.gamma), with_log_probs=True,
    )


# --------------------------------------------------------------------------- registration

AGENT_SPEC = AgentSpec(
    agent_id="airl",
    agent_factory=make_airl_agent,
    training_wrapper=train_airl,
    description="AIRL: a shaped reward g(s) + potential h gives the reward of a PPO generator",
    config_class=AIRLConfig,
    check_profile=check_demos_given,
    action_spaces=("Discrete", "MultiDiscrete", "Box"),
    flat_observations=True,
)
