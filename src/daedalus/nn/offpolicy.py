"""Networks for the off-policy algorithms (DQN, SAC, TD3): MLPs, twin critics, actors, target updates.

Small MLPs on a CPU spend more time in per-module and per-op dispatch than in arithmetic, so:

- :class:`EnsembleMLP` holds K same-shaped MLPs (SAC's and TD3's twin critics) as stacked weights
  ``(K, in, out)``: one batched matmul per layer for all members instead of K module calls;
- its ``forward(..., detach_params=True)`` uses the weights as constants, so the actor's loss
  backpropagates into the actions only and autograd never computes critic weight gradients
  that would be thrown away;
- :func:`polyak_update` is one fused ``_foreach_lerp_`` over all tensors.

Initialization follows ``torch.nn.Linear``'s default (what SB3 and CleanRL use for these
algorithms): weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from daedalus.nn.networks import ACTIVATIONS

__all__ = [
    "DeterministicActor",
    "EnsembleMLP",
    "SquashedGaussianActor",
    "hard_update",
    "mlp_network",
    "polyak_update",
]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of the SAC actor's log standard deviation


def mlp_network(input_dim: int, hidden_sizes: Sequence[int], output_dim: int, activation: str = "relu") -> nn.Sequential:
    """``Linear → activation`` per hidden size, then a linear output layer (default torch init)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(input_dim, size), ACTIVATIONS[activation]()]
        input_dim = size
    layers.append(nn.Linear(input_dim, output_dim))
    return nn.Sequential(*layers)


class EnsembleMLP(nn.Module):
    """``num_members`` independent MLPs evaluated together with batched matmuls.

    ``forward(x)`` takes ``(batch, input_dim)`` (the same input for every member) and returns
    ``(num_members, batch, output_dim)``. Member ``k`` is initialized like an ``nn.Linear`` stack.
    """

    def __init__(self, num_members: int, input_dim: int, hidden_sizes: Sequence[int], output_dim: int, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        self.num_members = num_members
        self.activation = ACTIVATIONS[activation]()
        sizes = [input_dim, *hidden_sizes, output_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(num_members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_members, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, detach_params: bool = False) -> torch.Tensor:
        """All members' outputs ``(num_members, batch, output_dim)``; ``detach_params`` treats weights as constants."""
        last = len(self.weights) - 1
        h = x
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if detach_params:
                weight, bias = weight.detach(), bias.detach()
            # (B, in) @ (K, in, out) broadcasts to (K, B, out): one kernel for every member.
            h = torch.baddbmm(bias, h, weight) if h.dim() == 3 else torch.matmul(h, weight) + bias
            if index < last:
                h = self.activation(h)
        return h


class SquashedGaussianActor(nn.Module):
    """SAC's policy: a Gaussian over pre-squash actions, ``tanh`` into ``[-1, 1]`` (Haarnoja et al. 2018).

    ``forward(obs)`` returns ``(actions, log_probs)`` with the change-of-variables correction
    ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2)``, computed in the numerically stable form
    ``2 * (log 2 - u - softplus(-2u))``. Actions are in ``[-1, 1]``; the algorithm rescales them to the
    Box bounds.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        self.trunk = mlp_network(obs_dim, hidden_sizes[:-1], hidden_sizes[-1], activation) if hidden_sizes else nn.Identity()
        self.trunk_activation = ACTIVATIONS[activation]() if hidden_sizes else nn.Identity()
        last = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.mean = nn.Linear(last, action_dim)
        self.log_std = nn.Linear(last, action_dim)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)`` of the pre-squash Gaussian."""
        hidden = self.trunk_activation(self.trunk(obs))
        return self.mean(hidden), self.log_std(hidden).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized sample in ``[-1, 1]`` and its log-probability."""
        mean, log_std = self.distribution(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        pre_squash = mean + noise * log_std.exp()
        log_prob = (-0.5 * noise.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2.0 * (math.log(2.0) - pre_squash - nn.functional.softplus(-2.0 * pre_squash))).sum(-1)
        return torch.tanh(pre_squash), log_prob

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action ``tanh(mean)``."""
        return torch.tanh(self.distribution(obs)[0])


class DeterministicActor(nn.Module):
    """TD3's policy: an MLP with a ``tanh`` output in ``[-1, 1]`` (Fujimoto et al. 2018)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        self.net = mlp_network(obs_dim, hidden_sizes, action_dim, activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions in ``[-1, 1]``."""
        return torch.tanh(self.net(obs))


@torch.no_grad()
def polyak_update(target: Iterable[torch.Tensor], online: Iterable[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online`` for every tensor, in one fused call.

    ``tau = 1`` is a hard copy (DQN's periodic target update).
    """
    target_list, online_list = list(target), list(online)
    if tau >= 1.0:
        torch._foreach_copy_(target_list, online_list)
    else:
        torch._foreach_lerp_(target_list, online_list, tau)


def hard_update(target: nn.Module, online: nn.Module) -> None:
    """Copy ``online``'s parameters and buffers into ``target``."""
    target.load_state_dict(online.state_dict())
