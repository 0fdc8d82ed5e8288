"""Preallocated on-policy rollout storage shaped ``(num_steps, batch_size, ...)``.

``batch_size`` is the flat agent axis: ``num_envs * num_agents`` rows, one per (env copy, agent).
Storage is numpy (the env side is numpy, and writing into preallocated numpy arrays costs
far less per step than building torch tensors); the whole rollout becomes torch tensors once,
zero-copy, when the update starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from daedalus.returns import compute_gae

__all__ = ["RolloutBatch", "RolloutStorage", "minibatch_indices"]


@dataclass
class RolloutBatch:
    """A flat batch of transitions (first axis: samples), as torch tensors.

    ``masks`` (``(samples, n)`` bool, optional) are the legal actions of a masked discrete
    action space (PettingZoo's classic games): the losses give illegal actions no probability.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def index(self, idx: torch.Tensor) -> RolloutBatch:
        """The sub-batch at ``idx`` (a minibatch)."""
        return RolloutBatch(
            self.obs[idx],
            self.actions[idx],
            self.logprobs[idx],
            self.values[idx],
            self.advantages[idx],
            self.returns[idx],
            None if self.masks is None else self.masks[idx],
        )


class RolloutStorage:
    """Fixed-size storage for ``num_steps`` steps of ``batch_size`` parallel rows.

    Per step, :meth:`add` writes one row block; :meth:`set_final_values` records the value of
    the real final observation of rows whose episode was truncated at that step (the value used
    to bootstrap). ``valid`` marks rows whose action was really applied: with Gymnasium's
    ``NEXT_STEP`` autoreset, the step after an episode end only resets the env, so that
    transition is excluded from the loss.
    """

    def __init__(
        self,
        num_steps: int,
        batch_size: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...],
        action_dtype: np.dtype | type = np.float32,
        obs_dtype: np.dtype | type = np.float32,
    ) -> None:
        self.num_steps = num_steps
        self.batch_size = batch_size
        shape = (num_steps, batch_size)
        self.obs = np.zeros(shape + tuple(obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(shape + tuple(action_shape), dtype=action_dtype)
        self.logprobs = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.valid = np.ones(shape, dtype=bool)
        self.final_values = np.zeros(shape, dtype=np.float32)
        self.advantages = np.zeros(shape, dtype=np.float32)
        self.returns = np.zeros(shape, dtype=np.float32)
        self.step = 0

    @classmethod
    def wrap(
        cls,
        obs: np.ndarray,
        actions: np.ndarray,
        logprobs: np.ndarray,
        values: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        valid: np.ndarray,
    ) -> RolloutStorage:
        """A full storage around arrays already collected (a trajectory), without copying them."""
        storage = cls.__new__(cls)
        storage.num_steps, storage.batch_size = rewards.shape
        storage.obs, storage.actions, storage.logprobs, storage.values = obs, actions, logprobs, values
        storage.rewards, storage.terminated, storage.truncated, storage.valid = rewards, terminated, truncated, valid
        storage.final_values = np.zeros(rewards.shape, dtype=np.float32)
        storage.advantages = np.zeros(rewards.shape, dtype=np.float32)
        storage.returns = np.zeros(rewards.shape, dtype=np.float32)
        storage.step = storage.num_steps
        return storage

    def reset(self) -> None:
        """Start writing from step 0 again (arrays are overwritten, not reallocated)."""
        self.step = 0
        self.final_values.fill(0.0)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        logprobs: np.ndarray,
        values: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        valid: np.ndarray | None = None,
    ) -> None:
        """Write step ``self.step``: the observation acted on, what was done and what came back."""
        t = self.step
        if t >= self.num_steps:
            raise IndexError(f"RolloutStorage is full ({self.num_steps} steps); call reset()")
        self.obs[t] = obs
        self.actions[t] = actions
        self.logprobs[t] = logprobs
        self.values[t] = values
        self.rewards[t] = rewards
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        self.valid[t] = True if valid is None else valid
        self.step = t + 1

    def set_final_values(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Value of the real final observation for ``rows`` that ended at the last added step."""
        self.final_values[self.step - 1, rows] = values

    def compute_advantages(self, last_values: np.ndarray, gamma: float, gae_lambda: float) -> None:
        """GAE over the filled rollout; ``last_values`` is V(observation after the last step)."""
        next_values = np.empty_like(self.values)
        next_values[:-1] = self.values[1:]
        next_values[-1] = last_values
        # Where an episode ended, the next stored value belongs to the reset observation (or,
        # with NEXT_STEP autoreset, to the final one): use the recorded final value instead.
        ended = self.truncated | self.terminated
        next_values = np.where(ended, self.final_values, next_values)
        self.advantages, self.returns = compute_gae(
            self.rewards,
            self.values,
            next_values,
            self.terminated,
            self.truncated,
            gamma,
            gae_lambda,
        )

    def flat_batch(self, device: torch.device | str = "cpu") -> RolloutBatch:
        """All valid transitions as one flat :class:`RolloutBatch` (zero-copy on CPU)."""
        keep = self.valid.reshape(-1)
        everything = bool(keep.all())

        def flat(array: np.ndarray) -> torch.Tensor:
            array = array.reshape((-1,) + array.shape[2:])
            if not everything:
                array = array[keep]
            return torch.from_numpy(np.ascontiguousarray(array)).to(device)

        return RolloutBatch(
            obs=flat(self.obs),
            actions=flat(self.actions),
            logprobs=flat(self.logprobs),
            values=flat(self.values),
            advantages=flat(self.advantages),
            returns=flat(self.returns),
        )


def minibatch_indices(
    num_samples: int, num_minibatches: int, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Shuffled indices split into ``num_minibatches`` nearly equal minibatches."""
    permutation = torch.randperm(num_samples, generator=generator)
    yield from torch.tensor_split(permutation, num_minibatches)
