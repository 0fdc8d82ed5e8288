"""Deterministic test envs for the rollout conformance suite (``tests/unit/test_rollout_conformance.py``).

:class:`CounterEnv` is a single env whose observation says where it is: ``[copy seed, episode,
step]`` (float32). It is reset with ``reset(seed=s)`` to ``[s, 0, 0]``; a reset without a seed
(an autoreset) starts the next episode ``[s, e + 1, 0]``. An episode whose *phase* ``(s + e) % 2``
is 0 **terminates** at step :data:`TERMINATE_AT`; one whose phase is 1 runs until the
``TimeLimit`` of :data:`MAX_EPISODE_STEPS` steps **truncates** it. The reward of a step is
``1 + action + s`` (exact in float32), so episode returns encode the seed and the actions.

:class:`CounterVectorEnv` is the same env as a native vector env with Gymnasium's ``NEXT_STEP``
autoreset (like ``CartPole-v1``'s vector entry point): the observation returned when an episode
ends is the final one, and the next step only resets that copy (reward 0, action ignored).
Unlike native CartPole, copy ``i`` of ``reset(seed=s)`` starts from seed ``s + i``.

Both are registered as :data:`COUNTER_ID`, so ``make_vec_env(..., mode="native")`` picks the
vector one and ``mode="sync"`` the single ones. :class:`EnvMaker` is a picklable
``make_env(seed)`` that remembers the env id (what the native path needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

__all__ = [
    "COUNTER_ID",
    "MAX_EPISODE_STEPS",
    "TERMINATE_AT",
    "CounterEnv",
    "CounterVectorEnv",
    "EnvMaker",
]

COUNTER_ID = "DaedalusTestCounter-v0"
#: A phase-0 episode terminates when its step counter reaches this.
TERMINATE_AT = 3
#: The TimeLimit that truncates phase-1 episodes.
MAX_EPISODE_STEPS = 5

_OBS_SPACE = gym.spaces.Box(low=-1e6, high=1e6, shape=(3,), dtype=np.float32)


def _phase_terminates(seed: int, episode: int) -> bool:
    return (seed + episode) % 2 == 0


class CounterEnv(gym.Env[np.ndarray, np.int64]):
    """Observation ``[seed, episode, step]``; phase-0 episodes terminate at :data:`TERMINATE_AT`."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = _OBS_SPACE
        self.action_space = gym.spaces.Discrete(2)
        self.base_seed = 0
        self.episode = 0
        self.steps = 0
        self.was_closed = False

    def _obs(self) -> np.ndarray:
        return np.array([self.base_seed, self.episode, self.steps], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            self.episode += 1
        else:
            self.base_seed, self.episode = int(seed), 0
        self.steps = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        assert action in (0, 1), action
        self.steps += 1
        terminated = _phase_terminates(self.base_seed, self.episode) and self.steps >= TERMINATE_AT
        return self._obs(), float(1 + action + self.base_seed), terminated, False, {}

    def close(self) -> None:
        self.was_closed = True


class CounterVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` :class:`CounterEnv` copies as one array, with ``NEXT_STEP`` autoreset."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, max_episode_steps: int = MAX_EPISODE_STEPS) -> None:
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = _OBS_SPACE
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.base_seed = np.arange(num_envs, dtype=np.int64)
        self.episode = np.zeros(num_envs, dtype=np.int64)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.prev_done = np.zeros(num_envs, dtype=bool)
        self.was_closed = False

    def _obs(self) -> np.ndarray:
        return np.stack([self.base_seed, self.episode, self.steps], axis=1).astype(np.float32)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:
            self.episode += 1
        else:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            self.base_seed = np.asarray(seeds, dtype=np.int64)
            self.episode[:] = 0
        self.steps[:] = 0
        self.prev_done[:] = False
        return self._obs(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions).astype(np.int64)
        assert actions.shape == (self.num_envs,) and np.isin(actions, (0, 1)).all(), actions
        self.steps += 1
        rewards = (1 + actions + self.base_seed).astype(np.float32)
        terminates = (self.base_seed + self.episode) % 2 == 0
        terminated = terminates & (self.steps >= TERMINATE_AT)
        truncated = self.steps >= self.max_episode_steps
        # The copies that ended at the previous step only reset now; their action is ignored.
        reset = self.prev_done
        self.episode[reset] += 1
        self.steps[reset] = 0
        rewards[reset] = 0.0
        terminated[reset] = False
        truncated[reset] = False
        self.prev_done = terminated | truncated
        return self._obs(), rewards, terminated, truncated, {}

    def close(self, **kwargs: Any) -> None:
        self.was_closed = True


def _make_counter_env(**kwargs: Any) -> CounterEnv:
    return CounterEnv(**kwargs)


def _make_counter_vector_env(**kwargs: Any) -> CounterVectorEnv:
    return CounterVectorEnv(**kwargs)


if COUNTER_ID not in gym.registry:
    gym.register(
        id=COUNTER_ID,
        entry_point=_make_counter_env,
        vector_entry_point=_make_counter_vector_env,
        max_episode_steps=MAX_EPISODE_STEPS,
    )


@dataclass(frozen=True)
class EnvMaker:
    """A picklable ``make_env(seed)``: ``gym.make(env_id, **kwargs)`` (reset with ``seed`` if given).

    ``created`` collects the envs built in *this* process, so tests can check they were closed.
    """

    env_id: str = COUNTER_ID
    kwargs: dict[str, Any] = field(default_factory=dict)
    created: list[Any] = field(default_factory=list, compare=False, repr=False)

    def __call__(self, seed: int | None = None) -> Any:
        env = gym.make(self.env_id, **self.kwargs)
        if seed is not None:
            env.reset(seed=seed)
        self.created.append(env)
        return env
