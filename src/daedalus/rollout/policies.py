"""Adapters that make :class:`~daedalus.rollout.contract.Policy` objects of what agents already have.

- :class:`PredictPolicy`: an agent with a batched ``predict(obs, deterministic)`` (every built-in);
- :class:`GetActionPolicy`: any agent with Crete's ``get_action(obs, extra_state)``, one row at a
  time, ``extra_state`` carried per row;
- :class:`FunctionPolicy`: a plain ``fn(obs) -> actions`` (the exploration policy of a replay loop);
- :class:`RandomPolicy`: uniformly random actions, one seeded draw per row.

Adapters of agents have no weights of their own to exchange: ``get_weights()`` is empty and
``set_weights`` accepts only that; a policy meant for remote workers implements both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np

from daedalus.rollout.contract import ActOutput

__all__ = ["FunctionPolicy", "GetActionPolicy", "PredictPolicy", "RandomPolicy"]


class _NoWeights:
    """``get_weights``/``set_weights`` of a policy that lives next to its agent."""

    def get_weights(self) -> dict[str, np.ndarray]:
        """Nothing: this policy is the agent itself, in this process."""
        return {}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Accepts only the empty mapping :meth:`get_weights` gives."""
        if weights:
            raise ValueError(f"{type(self).__name__} has no weights to set; got {sorted(weights)}")


class PredictPolicy(_NoWeights):
    """An agent's batched ``predict(obs_batch, deterministic) -> env actions``."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def act(self, obs: Any, state: Any = None, deterministic: bool = False) -> ActOutput:
        """``predict`` on the whole batch; the actions are what the env takes."""
        actions = _to_numpy(self.agent.predict(obs, deterministic=deterministic))
        return ActOutput(actions=actions)


class GetActionPolicy(_NoWeights):
    """Crete's ``get_action(obs, extra_state) -> (action, extra_state)``, row by row.

    ``state`` is a list with one ``extra_state`` per row (``None`` starts an episode). The
    ``deterministic`` flag is not the agent's to see: it acts as its ``get_action`` acts.
    """

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def act(self, obs: Any, state: Any = None, deterministic: bool = False) -> ActOutput:
        """One ``get_action`` per row."""
        rows = _num_rows(obs)
        states = state if isinstance(state, list) else [None] * rows
        actions, next_states = [], []
        for row in range(rows):
            action, extra = self.agent.get_action(_row(obs, row), states[row])
            actions.append(action)
            next_states.append(extra)
        return ActOutput(actions=_stack_actions(actions), state=next_states)


class FunctionPolicy(_NoWeights):
    """``fn(obs) -> actions`` (what a learner stores), with ``to_env(actions)`` for the env."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], to_env: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.fn = fn
        self.to_env = to_env

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        """``fn(obs)``."""
        actions = self.fn(obs)
        return ActOutput(actions=actions, env_actions=None if self.to_env is None else self.to_env(actions))


class RandomPolicy(_NoWeights):
    """Uniformly random actions from ``action_space``: one vectorized draw for all rows.

    Discrete, MultiDiscrete, MultiBinary and bounded Box spaces draw all rows at once from a
    NumPy generator seeded with ``seed``; other spaces fall back to ``action_space.sample()``
    per row (seeded the same way).
    """

    def __init__(self, action_space: Any, seed: int | None = None) -> None:
        from gymnasium import spaces

        self.action_space = action_space
        self._seed = seed
        self.rng = np.random.default_rng(seed)
        self._draw: Callable[[int], np.ndarray] | None = None
        if isinstance(action_space, spaces.Discrete):
            first, n = int(action_space.start), int(action_space.n)
            # floor(u * n) is uniform on 0..n-1 and ~2.5x cheaper than Generator.integers for a
            # few rows (Gymnasium's MultiDiscrete.sample draws the same way).
            self._draw = lambda rows: (self.rng.random(rows) * n).astype(action_space.dtype) + first
        elif isinstance(action_space, spaces.MultiDiscrete):
            nvec, offsets = action_space.nvec, action_space.start
            self._draw = lambda rows: (self.rng.integers(0, nvec, size=(rows, *nvec.shape)) + offsets).astype(action_space.dtype)
        elif isinstance(action_space, spaces.MultiBinary):
            self._draw = lambda rows: self.rng.integers(0, 2, size=(rows, *action_space.shape), dtype=action_space.dtype)
        elif isinstance(action_space, spaces.Box) and action_space.is_bounded("both"):
            low, high = action_space.low, action_space.high
            self._draw = lambda rows: self.rng.uniform(low, high, size=(rows, *action_space.shape)).astype(action_space.dtype)
        else:
            action_space.seed(seed)

    def copy_factory(self, seed: int | None = None) -> Callable[[int], RandomPolicy]:
        """``recipe(worker_index)``: a copy for a remote worker, drawing its own stream (seeded per worker)."""
        return partial(_random_copy, self.action_space, self._seed)

    def act(self, obs: Any, state: Any = None, deterministic: bool = False, mask: np.ndarray | None = None) -> ActOutput:
        """Random actions for every row; with ``mask`` (Discrete, ``(rows, n)`` bool), uniform among the legal ones."""
        rows = _num_rows(obs)
        if mask is not None:
            legal = np.asarray(mask, dtype=bool)
            # Uniform among the legal actions: argmax of uniform noise where legal.
            noise = np.where(legal, self.rng.random(legal.shape), -1.0)
            return ActOutput(actions=noise.argmax(-1).astype(self.action_space.dtype) + int(getattr(self.action_space, "start", 0)))
        if self._draw is not None:
            return ActOutput(actions=self._draw(rows))
        return ActOutput(actions=_stack_actions([self.action_space.sample() for _ in range(rows)]))


def _random_copy(action_space: Any, seed: int | None, worker: int = 0) -> RandomPolicy:
    return RandomPolicy(action_space, None if seed is None else seed + 7919 * (worker + 1))


def _num_rows(obs: Any) -> int:
    if isinstance(obs, dict):
        return _num_rows(next(iter(obs.values())))
    if isinstance(obs, tuple):
        return _num_rows(obs[0])
    return len(obs)


def _row(obs: Any, row: int) -> Any:
    if isinstance(obs, dict):
        return {key: _row(value, row) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_row(value, row) for value in obs)
    return obs[row]


def _stack_actions(actions: list[Any]) -> np.ndarray:
    first = actions[0]
    if isinstance(first, dict | tuple):
        out = np.empty(len(actions), dtype=object)  # structured action spaces: one object per row
        for row, action in enumerate(actions):
            out[row] = action
        return out
    return np.stack([np.asarray(a) for a in actions])


def _to_numpy(actions: Any) -> np.ndarray:
    """Torch tensors to NumPy; anything else through ``np.asarray``."""
    if hasattr(actions, "detach"):
        actions = actions.detach().cpu().numpy()
    return np.asarray(actions)
