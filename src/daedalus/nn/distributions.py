"""Action distributions: categorical, diagonal Gaussian, multi-discrete.

Plain classes over tensors rather than ``torch.distributions``: no argument validation and no
broadcasting machinery, which matters when a tiny policy is sampled thousands of times a second.
Each has ``log_prob(actions)``, ``entropy()``, ``sample(generator)`` and ``mode()``; every
method works on a batch (first axis).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch
from gymnasium import spaces

__all__ = [
    "ActionDistribution",
    "Categorical",
    "DiagGaussian",
    "MultiCategorical",
    "action_dim",
    "to_env_actions",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class ActionDistribution(Protocol):
    """What a policy head returns."""

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor: ...
    def entropy(self) -> torch.Tensor: ...
    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor: ...
    def mode(self) -> torch.Tensor: ...


class Categorical:
    """One discrete action per row, from unnormalized ``logits`` of shape ``(batch, n)``."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = torch.log_softmax(logits, dim=-1)  # log-probabilities (one kernel; ~15x faster than logsumexp on tiny batches)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        # Gumbel-max: argmax(logits + Gumbel noise) is an exact sample, and cheaper than
        # torch.multinomial for small batches.
        uniform = torch.rand(self.logits.shape, generator=generator, device=self.logits.device)
        gumbel = -torch.log(-torch.log(uniform.clamp_(min=1e-20)))
        return (self.logits + gumbel).argmax(-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)


class MultiCategorical:
    """Independent categoricals (``MultiDiscrete``): ``logits`` is ``(batch, sum(nvec))``."""

    def __init__(self, logits: torch.Tensor, nvec: list[int] | tuple[int, ...]) -> None:
        self.parts = [Categorical(chunk) for chunk in torch.split(logits, list(nvec), dim=-1)]

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.stack([p.log_prob(actions[..., i]) for i, p in enumerate(self.parts)], -1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.stack([p.entropy() for p in self.parts], -1).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.stack([p.sample(generator) for p in self.parts], -1)

    def mode(self) -> torch.Tensor:
        return torch.stack([p.mode() for p in self.parts], -1)


class DiagGaussian:
    """Independent Gaussians per action dimension.

    Samples are *not* squashed or clipped here: the log-probability must be that of the sampled
    action. Clipping to the action bounds happens when the action is sent to the env
    (:func:`to_env_actions`), as in SB3 and CleanRL.
    """

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.square() - self.log_std - _HALF_LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 + _HALF_LOG_2PI).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + noise * self.log_std.exp()

    def mode(self) -> torch.Tensor:
        return self.mean


def action_dim(action_space: spaces.Space[Any]) -> int:
    """Number of outputs the policy head needs for ``action_space``."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.Box):
        return int(np.prod(action_space.shape))
    raise TypeError(
        f"Unsupported action space {action_space!r}: use Discrete, MultiDiscrete or Box "
        "(wrap other spaces, e.g. flatten a Dict action space)."
    )


def to_env_actions(actions: np.ndarray, action_space: spaces.Space[Any]) -> np.ndarray:
    """What is sent to the env: Gaussian samples clipped to the Box bounds, the rest unchanged."""
    if isinstance(action_space, spaces.Box):
        return np.clip(actions, action_space.low, action_space.high)
    return actions


#: The logit an illegal action gets: its probability is 0 in float32, and no NaN appears.
MASKED_LOGIT = -1e9


def mask_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``logits`` with illegal actions (``mask`` False) set to :data:`MASKED_LOGIT`; as is without a mask."""
    return logits if mask is None else logits.masked_fill(~mask, MASKED_LOGIT)
