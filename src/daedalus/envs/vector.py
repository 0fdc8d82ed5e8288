"""Vectorized environments: native Gymnasium vector envs, sync, async and multi-agent copies.

:func:`make_vec_env` picks how ``num_envs`` copies of an environment run side by side.

``mode="auto"`` decides, in this order:

1. **native** — the env id has a Gymnasium ``vector_entry_point`` (CartPole-v1 does: all copies
   are stepped as one numpy array, no Python loop) *and* ``make_env`` adds no wrapper beyond what
   ``gymnasium.make`` adds. Profile wrappers must apply, and a native vector env cannot run
   per-env wrappers, so any extra wrapper rules the native path out.
2. **sync** (one process, a Python loop over copies) when one ``env.step`` is cheap: the mean
   of a few timed random steps is below :data:`CHEAP_STEP_SECONDS` (0.2 ms), or there is a single
   copy or a single CPU. Below that cost the inter-process round trip of an async env
   (~0.1-0.3 ms per step) costs more than it saves.
3. **async** (one subprocess per copy) otherwise: expensive steps (physics, rendering) run in
   parallel.

Autoreset: sync and async envs use Gymnasium's ``SAME_STEP`` mode, so the observation returned
when an episode ends is already the reset one and the real final observation is in
``info["final_obs"]`` — what a truncated episode must bootstrap from. Native vector envs only
offer ``NEXT_STEP`` (the final observation is returned, and the *next* step resets, ignoring its
action); the rollout worker reads ``metadata["autoreset_mode"]`` and masks that reset step out
(see :mod:`daedalus.rollout.worker`). Both therefore give the real final observation.

Multi-agent environments (see :class:`ArrayMultiAgentEnv`) are vectorized by
:class:`MultiAgentVectorEnv`, which lays the agents of all copies on one flat axis.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from daedalus.errors import DaedalusError

__all__ = [
    "CHEAP_STEP_SECONDS",
    "ArrayMultiAgentEnv",
    "MultiAgentVectorEnv",
    "autoreset_mode",
    "is_multi_agent",
    "make_vec_env",
]

#: Below this mean ``env.step`` time an env is "cheap" and runs in-process (sync).
CHEAP_STEP_SECONDS = 2e-4
_TIMED_STEPS = 32
VECTOR_MODES = ("auto", "native", "sync", "async")


@runtime_checkable
class ArrayMultiAgentEnv(Protocol):
    """How a multi-agent environment presents itself to the rollout layer.

    A Gymnasium-like env with a fixed number of agents that share one observation space and one
    action space (the per-agent spaces), everything as arrays with a leading agent axis:

    - ``num_agents: int``; ``observation_space`` / ``action_space``: **one agent's** spaces.
    - ``reset(seed=None, options=None) -> (obs[num_agents, ...], info)``
    - ``step(actions[num_agents, ...]) -> (obs[num_agents, ...], rewards[num_agents],
      terminated[num_agents], truncated[num_agents], info)``

    The episode of an env copy ends when every agent is terminated or truncated; an agent that
    is done earlier keeps receiving observations, but its transitions until the reset are
    marked invalid and not trained on. PettingZoo envs, with agent names and groups, have their own
    vector env (:class:`daedalus.envs.pettingzoo.NamedMultiAgentVecEnv`).
    """

    num_agents: int
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]: ...


def is_multi_agent(env: Any) -> bool:
    """True for envs following :class:`ArrayMultiAgentEnv` (they expose ``num_agents``)."""
    return isinstance(getattr(env, "num_agents", None), int) and not isinstance(env, VectorEnv)


def autoreset_mode(envs: Any) -> AutoresetMode:
    """The autoreset mode a vector env declares (Gymnasium's default is ``NEXT_STEP``)."""
    mode = getattr(envs, "metadata", {}).get("autoreset_mode", AutoresetMode.NEXT_STEP)
    return AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode


class MultiAgentVectorEnv:
    """``num_envs`` copies of an :class:`ArrayMultiAgentEnv`, flattened to one agent axis.

    Row ``env_index * num_agents + agent_index``. ``SAME_STEP`` autoreset: when every agent of a
    copy is done, the copy is reset in the same step and the final observations are returned in
    ``info["final_obs"]`` (an array over all rows) with ``info["_final_obs"]`` marking the rows.
    ``info["valid"]`` marks the rows whose agent was alive when the action was taken.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, envs: list[Any], seed: int | None = None) -> None:
        self.envs = envs
        self.num_envs = len(envs)
        self.num_agents = int(envs[0].num_agents)
        self.single_observation_space = envs[0].observation_space
        self.single_action_space = envs[0].action_space
        self._alive = np.ones(self.num_envs * self.num_agents, dtype=bool)
        self._seed = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy (copy ``i`` gets ``seed + i``)."""
        seed = self._seed if seed is None else seed
        obs = [env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(self.envs)]
        self._alive[:] = True
        return np.concatenate(obs, axis=0), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy with its agents' slice of ``actions``."""
        n = self.num_agents
        valid = self._alive.copy()
        results = [env.step(actions[i * n : (i + 1) * n]) for i, env in enumerate(self.envs)]
        obs = np.concatenate([r[0] for r in results], axis=0)
        rewards = np.concatenate([np.asarray(r[1], dtype=np.float32) for r in results])
        terminated = np.concatenate([np.asarray(r[2], dtype=bool) for r in results]) & valid
        truncated = np.concatenate([np.asarray(r[3], dtype=bool) for r in results]) & valid
        rewards = rewards * valid
        self._alive &= ~(terminated | truncated)
        final_obs = obs.copy()
        ended = np.zeros_like(valid)
        for i, env in enumerate(self.envs):
            rows = slice(i * n, (i + 1) * n)
            if not self._alive[rows].any():
                obs[rows] = env.reset()[0]
                self._alive[rows] = True
                ended[rows] = True
        info = {"final_obs": final_obs, "_final_obs": ended, "valid": valid}
        return obs, rewards, terminated, truncated, info

    def close(self) -> None:
        for env in self.envs:
            close = getattr(env, "close", None)
            if close is not None:
                close()


def _wrapper_chain(env: Any) -> list[str]:
    chain = []
    while env is not None:
        chain.append(type(env).__qualname__)
        env = getattr(env, "env", None)
    return chain


def _mean_step_seconds(env: gym.Env, steps: int = _TIMED_STEPS) -> float:
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / steps


def _has_native_vector(env_id: str) -> bool:
    try:
        spec = gym.spec(env_id)
    except Exception:  # not a Gymnasium id (a registered factory, a pkg.mod:make_env ref, ...)
        return False
    return spec.vector_entry_point is not None


def make_vec_env(
    make_env: Callable[[int | None], Any],
    num_envs: int,
    env_id: str,
    env_args: dict[str, Any] | None = None,
    mode: str = "auto",
    seed: int | None = None,
) -> Any:
    """``num_envs`` copies of the env built by ``make_env(seed)``, as one vector env.

    ``mode`` is ``"auto"`` (see the module docstring for the rule), ``"native"`` (Gymnasium's
    vector entry point; an error if the env has none or the profile adds wrappers), ``"sync"``
    or ``"async"``. Copy ``i`` is seeded with ``seed + i`` (a native vector env draws every copy from one generator seeded with ``seed``). Returns a Gymnasium ``VectorEnv``
    (``SAME_STEP`` autoreset unless native) or, for multi-agent envs, a
    :class:`MultiAgentVectorEnv`; both expose ``num_envs``, ``single_observation_space`` and
    ``single_action_space``, and multi-agent ones ``num_agents``.
    """
    if mode not in VECTOR_MODES:
        raise DaedalusError(f"Unknown vectorization mode '{mode}'. Use one of: {', '.join(VECTOR_MODES)}.")
    if num_envs < 1:
        raise DaedalusError(f"num_envs must be at least 1, got {num_envs}.")
    env_args = dict(env_args or {})

    def seeded(i: int) -> int | None:
        return None if seed is None else seed + i

    probe = make_env(seeded(0))
    if is_multi_agent(probe):
        return MultiAgentVectorEnv([probe] + [make_env(seeded(i)) for i in range(1, num_envs)], seed=seed)

    if mode in ("auto", "native"):
        native_ok = _has_native_vector(env_id)
        if native_ok:
            reference = gym.make(env_id, **env_args)
            # Extra wrappers from the profile would be silently dropped by the native env.
            native_ok = _wrapper_chain(reference) == _wrapper_chain(probe)
            reference.close()
        if mode == "native" and not native_ok:
            raise DaedalusError(
                f"vectorization 'native' is not possible for '{env_id}': Gymnasium has no vector "
                "entry point for it, or the profile adds wrappers. Use vectorization: auto or sync."
            )
        if native_ok:
            probe.close()
            envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_args)
            envs.reset(seed=seed)
            return envs
        if mode == "auto":
            cheap = num_envs == 1 or (os.cpu_count() or 1) < 2 or _mean_step_seconds(probe) < CHEAP_STEP_SECONDS
            mode = "sync" if cheap else "async"

    def thunk(i: int) -> Callable[[], Any]:
        return lambda: make_env(seeded(i))

    if mode == "sync":
        # Reuse the probe as copy 0 rather than building it twice.
        fns = [lambda: probe] + [thunk(i) for i in range(1, num_envs)]
        envs = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    else:
        probe.close()
        envs = AsyncVectorEnv([thunk(i) for i in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    envs.reset(seed=seed)
    return envs
