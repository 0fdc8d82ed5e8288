"""Rollout workers: the one place where ``env.step`` is called.

Every worker honours :class:`RolloutWorker`: ``reset(seed) -> obs`` then ``step(actions) ->
StepBatch``, on arrays with a **flat agent axis** of ``batch_size = num_envs * num_agents`` rows
(a single-agent env is one agent per env copy). The algorithm never sees how envs run:

- :class:`SerialWorker` steps a vector env in this process;
- :class:`SubprocessWorker` runs a :class:`SerialWorker` in a child process (the policy stays
  here; observations and actions cross a pipe once per step for all envs), which keeps env
  work off the learner's process;
- a Ray worker implements the same contract later (Ray is never imported here).

Each :class:`StepBatch` keeps ``terminated`` and ``truncated`` apart and carries the **real final
observation** of every episode that ended, whatever the env's autoreset mode, so truncated
episodes can be bootstrapped. With Gymnasium's ``NEXT_STEP`` autoreset (native vector envs) the
step after an episode end only resets the env and ignores its action: the worker reports that
row as ``valid=False`` so the learner drops it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from gymnasium.vector import AutoresetMode

from daedalus.envs.vector import autoreset_mode
from daedalus.rollout.contract import StepBatch

__all__ = ["RolloutWorker", "SerialWorker", "StepBatch", "SubprocessWorker"]

#: What a step in which no episode ended reports (read-only, shared).
_NO_RETURNS = np.zeros(0, dtype=np.float64)
_NO_LENGTHS = np.zeros(0, dtype=np.int64)
_NO_RETURNS.flags.writeable = False
_NO_LENGTHS.flags.writeable = False


class RolloutWorker(Protocol):
    """The contract shared by serial, subprocess and Ray rollout workers."""

    num_envs: int
    num_agents: int
    #: ``num_envs * num_agents``: the flat agent axis of every array.
    batch_size: int
    #: One agent's spaces.
    observation_space: Any
    action_space: Any

    @property
    def env_time(self) -> float:
        """Seconds spent inside ``env.step`` (and resets) so far."""
        ...

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset all envs; returns observations ``(batch_size, ...)``."""
        ...

    def step(self, actions: np.ndarray) -> StepBatch:
        """Apply ``actions`` (``(batch_size, ...)``, already in env bounds) to every env."""
        ...

    def close(self) -> None:
        """Release the envs (and processes)."""
        ...


class SerialWorker:
    """Steps a vector env in-process (see :func:`daedalus.envs.vector.make_vec_env`)."""

    def __init__(self, envs: Any) -> None:
        self.envs = envs
        self.num_envs = int(envs.num_envs)
        self.num_agents = int(getattr(envs, "num_agents", 1))
        self.batch_size = self.num_envs * self.num_agents
        self.observation_space = envs.single_observation_space
        self.action_space = envs.single_action_space
        self.env_time = 0.0
        self._next_step_reset = autoreset_mode(envs) == AutoresetMode.NEXT_STEP
        self._resetting = np.zeros(self.batch_size, dtype=bool)
        self._any_resetting = False  # whether any row of _resetting is set (saves a reduction per step)
        self._episode_return = np.zeros(self.batch_size, dtype=np.float64)
        self._episode_length = np.zeros(self.batch_size, dtype=np.int64)
        self._all_valid = np.ones(self.batch_size, dtype=bool)
        self._all_valid.flags.writeable = False  # shared by every step's batch

    def reset(self, seed: int | None = None) -> np.ndarray:
        start = time.perf_counter()
        obs, _ = self.envs.reset(seed=seed)
        self.env_time += time.perf_counter() - start
        self._resetting[:] = False
        self._any_resetting = False
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        return obs

    def step(self, actions: np.ndarray) -> StepBatch:
        start = time.perf_counter()
        obs, rewards, terminated, truncated, info = self.envs.step(actions)
        self.env_time += time.perf_counter() - start
        # Every line below runs once per vector step for all rows: keep them few and cheap
        # (the framework's own cost is measured in benchmarks/framework_overhead.py).
        rewards = np.asarray(rewards, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        ended = terminated | truncated
        any_ended = bool(ended.any())

        final_obs = obs
        if self._next_step_reset:
            # NEXT_STEP: the returned observation of an ended episode *is* the final one, and the
            # following step is a reset whose action is ignored.
            valid = ~self._resetting
            self._resetting = ended
            any_reset, self._any_resetting = self._any_resetting, any_ended
        else:
            given_valid = info.get("valid")
            valid = self._all_valid if given_valid is None else np.asarray(given_valid, dtype=bool)
            any_reset = given_valid is not None and not valid.all()
            if any_ended and "final_obs" in info:
                given = info["final_obs"]
                if given.dtype != object:
                    final_obs = given  # already a full array (MultiAgentVectorEnv)
                else:
                    # Gymnasium: an object array holding the final observation of reset envs only.
                    final_obs = obs.copy()
                    for row in np.flatnonzero(info["_final_obs"]):
                        final_obs[row] = given[row]

        if any_reset:
            np.add(self._episode_return, rewards, out=self._episode_return, where=valid)
            self._episode_length += valid
        else:
            self._episode_return += rewards
            self._episode_length += 1
        if not any_ended:
            return StepBatch(obs, rewards, terminated, truncated, final_obs, valid, _NO_RETURNS, _NO_LENGTHS)
        episode_returns = self._episode_return[ended]
        episode_lengths = self._episode_length[ended]
        self._episode_return[ended] = 0.0
        self._episode_length[ended] = 0
        return StepBatch(obs, rewards, terminated, truncated, final_obs, valid, episode_returns, episode_lengths)

    def close(self) -> None:
        self.envs.close()


def _subprocess_main(connection: Any, build_envs: Callable[[], Any]) -> None:
    worker = SerialWorker(build_envs())
    connection.send((worker.num_envs, worker.num_agents, worker.observation_space, worker.action_space))
    while True:
        command, payload = connection.recv()
        if command == "step":
            batch = worker.step(payload)
            connection.send((batch, worker.env_time))
        elif command == "reset":
            connection.send((worker.reset(payload), worker.env_time))
        else:
            worker.close()
            connection.close()
            return


class SubprocessWorker:
    """A :class:`SerialWorker` living in a child process, driven through a pipe.

    ``build_envs`` (picklable, e.g. a ``functools.partial`` of :func:`make_vec_env`) builds the
    vector env *in the child*. Worth it when env steps are expensive enough to overlap with
    other work in the parent; for cheap envs the pipe round trip dominates.
    """

    def __init__(self, build_envs: Callable[[], Any], start_method: str | None = None) -> None:
        context: Any = mp.get_context(start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn"))
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_subprocess_main, args=(child, build_envs), daemon=True)
        self._process.start()
        child.close()
        self.num_envs, self.num_agents, self.observation_space, self.action_space = self._connection.recv()
        self.batch_size = self.num_envs * self.num_agents
        self.env_time = 0.0

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._connection.send(("reset", seed))
        obs, self.env_time = self._connection.recv()
        return obs

    def step(self, actions: np.ndarray) -> StepBatch:
        self._connection.send(("step", actions))
        batch, self.env_time = self._connection.recv()
        return batch

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):  # the child may already be gone
                self._connection.send(("close", None))
            self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
        self._connection.close()
