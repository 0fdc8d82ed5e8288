"""The collection contract: what runs inside a worker (:class:`Policy`), what steps environments
(:class:`RolloutSource`) and what comes back (:class:`Trajectory`, :class:`EpisodeStats`).

Every consumer — PPO, A2C, DQN, SAC, TD3, the stepwise loop, evaluation, videos, the random
agent — collects experience through a rollout source; serial and subprocess sources implement
it here and pass one conformance suite (``tests/unit/test_rollout_conformance.py``), and a Ray
source will pass the same suite. Arrays are NumPy; the agent axis is flat (``batch_size =
num_envs * num_agents`` rows); a single-agent env is the group :data:`DEFAULT_GROUP`.

Two ways to drive a source:

- **rollout level** (the default): ``source.sample(policies, num_steps)`` returns one
  :class:`Trajectory` per group, and ``source.episodes(policies, n, ...)`` plays exactly ``n``
  episodes for evaluation. A remote worker crosses the process boundary once per call.
- **step level** (stepwise agents that learn after every step, replay loops that interleave one
  env step with learning): ``source.reset(seed)`` then ``source.step(env_actions) -> StepBatch``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "DEFAULT_GROUP",
    "ActOutput",
    "EpisodeStats",
    "Policy",
    "RolloutSource",
    "StepBatch",
    "Trajectory",
]

#: The group of a single-agent env (and of every agent while one policy is shared by all).
DEFAULT_GROUP = "default"


@dataclass
class ActOutput:
    """What a policy returns for a batch of observations (rows on the first axis)."""

    #: Actions as the learner stores them (e.g. an unclipped Gaussian sample).
    actions: np.ndarray
    #: Actions as the env takes them (clipped or rescaled to the action space); None: ``actions``.
    env_actions: np.ndarray | None = None
    #: log pi(actions | obs), shape ``(rows,)``, when the policy is stochastic and knows it.
    log_probs: np.ndarray | None = None
    #: V(obs), shape ``(rows,)``, for actor-critic policies.
    values: np.ndarray | None = None
    #: The next recurrent state (or whatever the policy carries between calls).
    state: Any = None

    def to_env(self) -> np.ndarray:
        """The actions to send to the environments."""
        return self.actions if self.env_actions is None else self.env_actions


@runtime_checkable
class Policy(Protocol):
    """What runs inside a worker: observations in, actions out; weights as plain named arrays.

    ``get_weights()`` / ``set_weights()`` exchange NumPy arrays only (no pickle), so that a
    subprocess or a Ray actor can hold a copy and be brought up to date once per update. A
    policy does not know about optimizers. ``state`` is per row (``None`` at an episode start).
    """

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        """Actions for ``obs`` (``(rows, *obs_shape)``)."""
        ...

    def get_weights(self) -> dict[str, np.ndarray]:
        """Everything needed to act like this policy, as named arrays."""
        ...

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Act like the policy whose ``get_weights()`` gave ``weights``."""
        ...


@dataclass
class StepBatch:
    """What one step of all envs returns; every array has ``batch_size`` rows."""

    #: Observation to act on next (already reset where an episode ended).
    obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    #: Real final observation where ``terminated | truncated``; other rows are unspecified.
    final_obs: np.ndarray
    #: False where the action of this step was not applied (autoreset step, dead agent).
    valid: np.ndarray
    #: Undiscounted returns and lengths of the episodes that finished at this step.
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    episode_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class Trajectory:
    """``num_steps`` steps of one group's rows: arrays are ``(num_steps, rows, ...)``.

    ``obs[t]`` is what the policy acted on at step ``t``; ``next_obs[t]`` the observation after
    it — the **real final observation** where the episode ended (``terminated[t] |
    truncated[t]``), not the reset one — so both replay targets and the bootstrap of truncated
    episodes read it directly. ``last_obs`` (``(rows, ...)``) is what the next call acts on.
    ``valid[t]`` is False where the step's action was not applied (an autoreset step): learners
    drop those rows. ``extras`` holds per-step policy outputs (``log_probs``, ``values``).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    next_obs: np.ndarray
    last_obs: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    group: str = DEFAULT_GROUP
    #: The version of the policy the steps were collected with (raised by each update).
    policy_version: int = 0
    #: Returns and lengths of the episodes that ended inside this trajectory, in order.
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    episode_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def num_steps(self) -> int:
        """Steps per row."""
        return int(self.rewards.shape[0])

    @property
    def num_rows(self) -> int:
        """Rows (env copies x agents of the group)."""
        return int(self.rewards.shape[1])

    @property
    def num_transitions(self) -> int:
        """``num_steps * num_rows``, valid or not."""
        return int(self.rewards.size)


@dataclass(frozen=True)
class EpisodeStats:
    """Returns and lengths of exactly ``n`` finished episodes, in episode (seed) order."""

    returns: list[float]
    lengths: list[int]


#: ``on_frame(env_index, env)`` after every reset and step of :meth:`RolloutSource.episodes`.
FrameCallback = Callable[[int, Any], None]


class RolloutSource(Protocol):
    """Steps environments for a learner: serial, subprocess (and later Ray) sources honour it."""

    num_envs: int
    num_agents: int
    #: ``num_envs * num_agents``: the rows of every array.
    batch_size: int
    #: One agent's spaces.
    observation_space: Any
    action_space: Any
    #: Seconds spent inside ``env.step`` / ``env.reset`` so far.
    env_time: float
    #: Seconds spent inside ``policy.act`` by :meth:`sample` so far.
    inference_time: float

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env copy; returns ``(batch_size, ...)`` obs.

        Copy ``i`` is reset with ``seed + i``, except in Gymnasium's native vector envs
        (``vectorization: native``), which draw every copy from one generator seeded with ``seed``.
        """
        ...

    def step(self, env_actions: np.ndarray) -> StepBatch:
        """One step of every row with actions already in env bounds."""
        ...

    def sample(self, policies: Mapping[str, Policy], num_steps: int, policy_version: int = 0) -> dict[str, Trajectory]:
        """``num_steps`` steps of every row, each group acting with its policy; continues episodes."""
        ...

    def episodes(
        self,
        policies: Mapping[str, Policy],
        n: int,
        deterministic: bool = True,
        seed: int | None = None,
        max_steps: int | None = None,
        on_frame: FrameCallback | None = None,
    ) -> EpisodeStats:
        """Play exactly ``n`` whole episodes (episode ``i`` reset with ``seed + i``) on fresh env copies."""
        ...

    def close(self) -> None:
        """Release envs and processes."""
        ...
