"""Preallocated FIFO replay buffer over numpy arrays, with the flat agent axis of the rollout layer.

Layout
------
Every array is shaped ``(steps_per_row, num_rows, ...)``: one **time slot** per step of the vector
env, one **row** per (env copy, agent), exactly like :class:`daedalus.rollout.worker.StepBatch`.
All rows advance together, so one write pointer ``pos`` (a time slot) serves the whole ring and
the oldest slot is overwritten first (FIFO). ``capacity`` transitions means
``steps_per_row = ceil(capacity / num_rows)`` time slots.

Observations are stored **once**. Slot ``t`` of a row holds the observation the action was taken
in; the *next* observation is the one in slot ``t + 1`` of the same row, because that is the
observation acted on at the following step. That is wrong exactly when the episode ended at
``t`` (``terminated`` or ``truncated``): autoreset has already replaced the observation, so the
real final observation (``StepBatch.final_obs``) is written **aside**, into a small store of final
observations, and slot ``t`` keeps its index there (``final_index[t, row]``; ``-1`` when the
episode did not end). Truncated transitions bootstrap from that real final observation;
terminated ones do not bootstrap at all, but their final observation is kept anyway so that
``next_obs`` is always the true one (some losses use it). The side store holds one observation
per *episode end* currently in the buffer; it starts at ``num_rows + capacity // 64`` entries and
doubles when more episodes end within one buffer length (rare: episodes shorter than 64 steps on
average), and its entries are recycled when the slot that owns them is overwritten.

Two consequences:

- the **newest** time slot cannot be sampled yet (its next observation arrives with the next
  :meth:`ReplayBuffer.add`); it becomes sampleable one step later;
- ``valid=False`` slots (Gymnasium ``NEXT_STEP`` autoreset steps whose action was ignored, dead
  agents of a multi-agent env) are stored to keep the time axis aligned but never sampled.

Memory
------
:meth:`ReplayBuffer.memory_per_transition` gives the bytes of one slot:
``obs_bytes + action_bytes + 4 (reward) + 3 (terminated, truncated, valid) + 4 (final_index)``,
e.g. 4·4 + 8 + 11 = 35 bytes for CartPole (obs 4 x float32, Discrete action as int64) and
3·4 + 4 + 11 = 27 bytes for Pendulum. Storing ``next_obs`` explicitly would add ``obs_bytes`` per
transition; here each *episode end* adds ``obs_bytes`` once instead (:attr:`ReplayBuffer.nbytes`
counts everything allocated).

n-step returns
--------------
``sample(..., n_steps=n, gamma=g)`` returns ``rewards = sum_{k<m} g^k r_{t+k}`` and
``discounts = g^m`` with ``m = min(n, steps until the episode ends, steps stored)``, the
``next_obs`` after step ``t + m - 1`` and that step's ``terminated``/``truncated`` flags. The
learner's target is ``rewards + discounts * (1 - terminated) * V(next_obs)``: exactly
:func:`daedalus.returns.compute_nstep_returns` for the sampled step (tested against it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

__all__ = ["ReplayBuffer", "ReplaySample"]


@dataclass
class ReplaySample:
    """A batch of transitions (first axis: samples), numpy or torch.

    ``rewards`` are n-step discounted sums (one reward when ``n_steps=1``) and ``discounts`` the
    factor ``gamma ** m`` in front of the bootstrap value; ``terminated`` / ``truncated`` belong
    to the last step used, so the target is ``rewards + discounts * (1 - terminated) * V(next_obs)``.
    """

    obs: Any
    actions: Any
    rewards: Any
    next_obs: Any
    terminated: Any
    truncated: Any
    discounts: Any

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def slice(self, start: int, stop: int) -> ReplaySample:
        """Samples ``start:stop`` (views, no copy)."""
        return ReplaySample(**{item.name: getattr(self, item.name)[start:stop] for item in fields(self)})

    def to_torch(self, device: torch.device | str = "cpu") -> ReplaySample:
        """The same batch as torch tensors (zero-copy on CPU); flags become float32 (0/1)."""
        out = {}
        for item in fields(self):
            value = np.asarray(getattr(self, item.name))
            if value.dtype == np.bool_:
                value = value.astype(np.float32)
            out[item.name] = torch.from_numpy(np.ascontiguousarray(value)).to(device)
        return ReplaySample(**out)


class ReplayBuffer:
    """FIFO ring of ``capacity`` transitions over ``num_rows`` parallel rows (see the module docstring).

    Args:
        capacity: Transitions kept (rounded up to a multiple of ``num_rows``).
        num_rows: Rows per step: ``num_envs * num_agents`` of the rollout worker.
        obs_shape / action_shape: One row's observation and action shapes.
        obs_dtype / action_dtype: Storage dtypes (``uint8`` images stay ``uint8``).
        seed: Seeds the numpy Generator used by :meth:`sample`.
    """

    def __init__(
        self,
        capacity: int,
        num_rows: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...] = (),
        obs_dtype: np.dtype | type = np.float32,
        action_dtype: np.dtype | type = np.float32,
        seed: int | None = None,
    ) -> None:
        if capacity < 1 or num_rows < 1:
            raise ValueError(f"capacity and num_rows must be >= 1, got {capacity} and {num_rows}")
        self.num_rows = int(num_rows)
        # Two slots at least: the newest one is never sampleable on its own.
        self.steps_per_row = max(2, math.ceil(capacity / num_rows))
        self.capacity = self.steps_per_row * self.num_rows
        self.obs_shape = tuple(obs_shape)
        self.action_shape = tuple(action_shape)
        shape = (self.steps_per_row, self.num_rows)
        self.obs = np.zeros(shape + self.obs_shape, dtype=obs_dtype)
        self.actions = np.zeros(shape + self.action_shape, dtype=action_dtype)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)
        self.final_index = np.full(shape, -1, dtype=np.int32)
        # Side store of real final observations, recycled through a free-index stack.
        store_size = self.num_rows + self.capacity // 64
        self.final_obs = np.zeros((store_size,) + self.obs_shape, dtype=obs_dtype)
        self._free = np.arange(store_size - 1, -1, -1, dtype=np.int32)
        self._num_free = store_size
        self.pos = 0  # next time slot to write
        self.size = 0  # time slots filled (<= steps_per_row)
        self.rng = np.random.default_rng(seed)

    # ---- sizes
    def __len__(self) -> int:
        """Transitions stored (including the not yet sampleable newest step)."""
        return self.size * self.num_rows

    def memory_per_transition(self) -> int:
        """Bytes per stored transition (one slot of one row), side store of final observations excluded.

        ``obs + action + reward (4) + terminated, truncated, valid (3) + final_index (4)``;
        each episode end adds one observation in the side store (see :attr:`nbytes`).
        """
        per_slot = (self.obs, self.actions, self.rewards, self.terminated, self.truncated, self.valid, self.final_index)
        return int(sum(array.itemsize * math.prod(array.shape[2:]) for array in per_slot))

    @property
    def nbytes(self) -> int:
        """Bytes allocated in total, side store and free stack included."""
        return self.memory_per_transition() * self.capacity + self.final_obs.nbytes + self._free.nbytes

    # ---- writing
    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: np.ndarray | None = None,
        valid: np.ndarray | None = None,
    ) -> None:
        """Write one step of every row: the observation acted on, the action and what came back.

        ``final_obs`` (``StepBatch.final_obs``) is read on rows where ``terminated | truncated``;
        ``valid=False`` rows are kept but never sampled.
        """
        t = self.pos
        # Recycle the side-store entries of the episode ends being overwritten.
        old = self.final_index[t]
        if self.size == self.steps_per_row and (old >= 0).any():
            self._push_free(old[old >= 0])
        self.final_index[t] = -1
        self.obs[t] = obs
        self.actions[t] = np.asarray(actions).reshape((self.num_rows,) + self.action_shape)
        self.rewards[t] = rewards
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        self.valid[t] = True if valid is None else valid
        ended = np.flatnonzero(self.valid[t] & (self.terminated[t] | self.truncated[t]))
        if len(ended):
            if final_obs is None:
                raise ValueError("add(): episodes ended at this step, so final_obs is required")
            slots = self._pop_free(len(ended))
            self.final_obs[slots] = np.asarray(final_obs)[ended]
            self.final_index[t, ended] = slots
        self.pos = (t + 1) % self.steps_per_row
        self.size = min(self.size + 1, self.steps_per_row)

    def _push_free(self, indices: np.ndarray) -> None:
        self._free[self._num_free : self._num_free + len(indices)] = indices
        self._num_free += len(indices)

    def _pop_free(self, count: int) -> np.ndarray:
        if count > self._num_free:
            # More episode ends than the side store holds: double it (amortized, rare).
            old_size = len(self.final_obs)
            new_size = max(2 * old_size, old_size + count)
            grown = np.zeros((new_size,) + self.obs_shape, dtype=self.final_obs.dtype)
            grown[:old_size] = self.final_obs
            self.final_obs = grown
            free = np.empty(new_size, dtype=np.int32)
            free[: self._num_free] = self._free[: self._num_free]
            self._free = free
            self._push_free(np.arange(new_size - 1, old_size - 1, -1, dtype=np.int32))
        self._num_free -= count
        return self._free[self._num_free : self._num_free + count].copy()

    # ---- reading
    @property
    def num_sampleable_steps(self) -> int:
        """Time slots whose next observation is known (all filled slots but the newest)."""
        return max(self.size - 1, 0)

    def sample_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(time_slots, rows)`` of ``batch_size`` uniformly drawn valid transitions (with replacement)."""
        span = self.num_sampleable_steps
        if span < 1:
            raise ValueError("sample(): the buffer needs at least two steps before it can be sampled")
        oldest = (self.pos - self.size) % self.steps_per_row
        flat = self.rng.integers(0, span * self.num_rows, size=batch_size)
        slots, rows = (oldest + flat // self.num_rows) % self.steps_per_row, flat % self.num_rows
        invalid = np.flatnonzero(~self.valid[slots, rows])
        # Rejection keeps the draw uniform over valid transitions; invalid slots are rare.
        for _ in range(1000):
            if not len(invalid):
                break
            flat = self.rng.integers(0, span * self.num_rows, size=len(invalid))
            slots[invalid], rows[invalid] = (oldest + flat // self.num_rows) % self.steps_per_row, flat % self.num_rows
            invalid = invalid[~self.valid[slots[invalid], rows[invalid]]]
        else:
            raise ValueError("sample(): the buffer holds no valid transition")
        return slots, rows

    def sample(self, batch_size: int, n_steps: int = 1, gamma: float = 0.99) -> ReplaySample:
        """``batch_size`` transitions drawn uniformly (numpy arrays; see :class:`ReplaySample`)."""
        slots, rows = self.sample_indices(batch_size)
        return self.gather(slots, rows, n_steps, gamma)

    def gather(self, slots: np.ndarray, rows: np.ndarray, n_steps: int = 1, gamma: float = 0.99) -> ReplaySample:
        """The transitions at ``(slots, rows)``, with ``n_steps``-step returns."""
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        obs = self.obs[slots, rows]
        actions = self.actions[slots, rows]
        if n_steps == 1:
            last = slots
            rewards = self.rewards[slots, rows]
            discounts = np.full(len(slots), gamma, dtype=np.float32)
        else:
            # Walk forward in the same row until n steps, the episode's end or the newest known step.
            oldest = (self.pos - self.size) % self.steps_per_row
            age = (slots - oldest) % self.steps_per_row  # 0 = oldest
            rewards = np.zeros(len(slots), dtype=np.float32)
            discounts = np.ones(len(slots), dtype=np.float32)
            running = np.ones(len(slots), dtype=bool)
            last = slots.copy()
            for k in range(n_steps):
                if k > 0:
                    running &= age + k <= self.num_sampleable_steps - 1
                step_slots = (slots + k) % self.steps_per_row
                rewards += running * discounts * self.rewards[step_slots, rows]
                discounts = np.where(running, discounts * gamma, discounts).astype(np.float32)
                last = np.where(running, step_slots, last)
                running &= ~(self.terminated[step_slots, rows] | self.truncated[step_slots, rows])
        final = self.final_index[last, rows]
        next_obs = self.obs[(last + 1) % self.steps_per_row, rows]
        ended = np.flatnonzero(final >= 0)
        if len(ended):
            next_obs[ended] = self.final_obs[final[ended]]
        return ReplaySample(
            obs=obs,
            actions=actions,
            rewards=rewards,
            next_obs=next_obs,
            terminated=self.terminated[last, rows],
            truncated=self.truncated[last, rows],
            discounts=discounts,
        )

    # ---- state (exact resume)
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to restore the buffer exactly, as arrays (counters as 0-d int64)."""
        return {
            "obs": self.obs,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "valid": self.valid,
            "final_index": self.final_index,
            "final_obs": self.final_obs,
            "free": self._free[: self._num_free].copy(),
            "counters": np.asarray([self.pos, self.size], dtype=np.int64),
        }

    def rng_state(self) -> dict[str, Any]:
        """The sampling Generator's state (JSON-serializable)."""
        return dict(self.rng.bit_generator.state)

    def load_state_arrays(self, arrays: dict[str, Any], rng_state: dict[str, Any] | None = None) -> None:
        """Inverse of :meth:`state_arrays` (accepts numpy arrays or torch tensors)."""
        def as_numpy(value: Any) -> np.ndarray:
            return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)

        for name in ("obs", "actions", "rewards", "terminated", "truncated", "valid", "final_index"):
            source = as_numpy(arrays[name])
            if source.shape != getattr(self, name).shape:
                raise ValueError(f"replay buffer '{name}' has shape {source.shape}, expected {getattr(self, name).shape}")
            getattr(self, name)[...] = source
        self.final_obs = as_numpy(arrays["final_obs"]).astype(self.obs.dtype, copy=True)
        free = as_numpy(arrays["free"]).astype(np.int32)
        self._free = np.empty(len(self.final_obs), dtype=np.int32)
        self._free[: len(free)] = free
        self._num_free = len(free)
        self.pos, self.size = (int(v) for v in as_numpy(arrays["counters"]))
        if rng_state is not None:
            self.rng.bit_generator.state = rng_state
