"""MLP actor-critic with CleanRL's orthogonal initialization.

Actor and critic have separate trunks by default (as in CleanRL and SB3's ``MlpPolicy``);
``shared_trunk=True`` makes them share the hidden layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from daedalus.nn.distributions import (
    ActionDistribution,
    Categorical,
    DiagGaussian,
    MultiCategorical,
    action_dim,
)

__all__ = ["ACTIVATIONS", "ActorCritic", "layer_init", "mlp"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def layer_init(layer: nn.Linear, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain ``std`` and constant bias (CleanRL / the PPO paper's code)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(input_dim: int, hidden_sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Hidden layers only: ``Linear → activation`` for each size (empty when no sizes)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(input_dim, size)), ACTIVATIONS[activation]()]
        input_dim = size
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Policy and value function for a flat observation vector.

    ``forward(obs)`` returns ``(policy_out, value)``; :meth:`distribution` turns ``policy_out``
    into an action distribution. Output layers use gains 0.01 (policy: near-uniform start) and
    1.0 (value), hidden layers sqrt(2), as in CleanRL.
    """

    def __init__(
        self,
        obs_dim: int,
        action_space: spaces.Space[Any],
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        shared_trunk: bool = False,
        log_std_init: float = 0.0,
        actor_inputs: int | None = None,
    ) -> None:
        super().__init__()
        if actor_inputs is not None and (shared_trunk or not 0 < actor_inputs < obs_dim):
            raise ValueError(f"actor_inputs={actor_inputs} needs separate trunks and 0 < actor_inputs < obs_dim ({obs_dim})")
        self.action_space = action_space
        self.shared_trunk = shared_trunk
        #: With a centralized critic: the actor reads ``obs[:, :actor_inputs]``, the critic the rest.
        self.actor_inputs = actor_inputs
        last = hidden_sizes[-1] if hidden_sizes else (actor_inputs or obs_dim)
        if actor_inputs is not None and not hidden_sizes:
            raise ValueError("a centralized critic needs hidden layers (hidden_sizes)")
        self.actor_trunk = mlp(actor_inputs or obs_dim, hidden_sizes, activation)
        critic_dim = obs_dim - actor_inputs if actor_inputs is not None else obs_dim
        self.critic_trunk = self.actor_trunk if shared_trunk else mlp(critic_dim, hidden_sizes, activation)
        self.actor_head = layer_init(nn.Linear(last, action_dim(action_space)), std=0.01)
        self.critic_head = layer_init(nn.Linear(last, 1), std=1.0)
        self.log_std: nn.Parameter | None = None
        if isinstance(action_space, spaces.Box):
            # State-independent log standard deviation, learned (SB3 / CleanRL continuous PPO).
            self.log_std = nn.Parameter(torch.full((action_dim(action_space),), float(log_std_init)))
        self.nvec: list[int] | None = (
            [int(n) for n in action_space.nvec.reshape(-1)]
            if isinstance(action_space, spaces.MultiDiscrete)
            else None
        )

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(policy_out, value)`` for a batch of observations; ``value`` has shape ``(batch,)``."""
        if self.actor_inputs is not None:
            split = self.actor_inputs
            return self.actor_head(self.actor_trunk(obs[:, :split])), self.critic_head(self.critic_trunk(obs[:, split:])).squeeze(-1)
        actor_hidden = self.actor_trunk(obs)
        critic_hidden = actor_hidden if self.shared_trunk else self.critic_trunk(obs)
        return self.actor_head(actor_hidden), self.critic_head(critic_hidden).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values only (used to bootstrap truncated episodes)."""
        if self.actor_inputs is not None:
            obs = obs[:, self.actor_inputs :]
        return self.critic_head(self.critic_trunk(obs)).squeeze(-1)

    def distribution(self, policy_out: torch.Tensor) -> ActionDistribution:
        """The action distribution for a policy output of :meth:`forward`."""
        if self.log_std is not None:
            return DiagGaussian(policy_out, self.log_std)
        if self.nvec is not None:
            return MultiCategorical(policy_out, self.nvec)
        return Categorical(policy_out)
