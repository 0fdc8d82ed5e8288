"""Off-policy collection: step a rollout source (or a bare worker) with a policy and fill a replay buffer.

The replay loops interleave one env step of every row with learning, so they drive a
:class:`~daedalus.rollout.source.LocalSource` at its step level (``reset``/``step``): ``worker``
below is anything with that interface, a source or a worker.

:class:`Collector` is the glue every replay-based agent needs (built-in DQN / SAC / TD3 and custom
agents alike): it keeps the current observation of every row, calls the policy **once per step
for all rows**, steps the worker (the only place ``env.step`` runs), writes the transition into a
:class:`~daedalus.buffers.replay.ReplayBuffer` with the real final observations, and counts
episodes. It also answers ReAllY's ``sample(n, from_buffer=...)``::

    collector = Collector(worker, buffer, policy=lambda obs: agent.act(obs))
    fresh = collector.sample(256, from_buffer=False)   # 256 new transitions (also stored)
    replay = collector.sample(256, from_buffer=True)   # 256 drawn uniformly from the buffer

A policy is ``policy(obs) -> actions``: ``obs`` is ``(batch_size, ...)``, ``actions`` what the
buffer stores; ``action_to_env`` maps them to what the env takes (e.g. a tanh-squashed action in
``[-1, 1]`` rescaled to the Box bounds). Inference time is measured here, env time by the worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from daedalus.buffers.replay import ReplayBuffer, ReplaySample
from daedalus.rollout.worker import RolloutWorker, StepBatch

__all__ = ["Collector", "Policy"]

#: ``policy(obs[batch_size, ...]) -> actions[batch_size, ...]`` (what the buffer stores).
Policy = Callable[[np.ndarray], np.ndarray]


class Collector:
    """Steps ``worker`` with a policy, writing every step into ``buffer`` (see the module docstring)."""

    def __init__(
        self,
        worker: RolloutWorker,
        buffer: ReplayBuffer | None,
        policy: Policy | None = None,
        action_to_env: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.worker = worker
        self.buffer = buffer
        self.policy = policy
        self.action_to_env = action_to_env
        self.obs: np.ndarray | None = None
        self.inference_time = 0.0
        self.num_steps = 0  # env steps summed over rows
        self.num_episodes = 0
        self.episode_returns: list[float] = []  # returns of finished episodes, in order

    @property
    def env_time(self) -> float:
        """Seconds spent stepping envs (measured by the worker)."""
        return float(self.worker.env_time)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env; the next step acts on the returned observations."""
        self.obs = self.worker.reset(seed=seed)
        return self.obs

    def step(self, policy: Policy | None = None, actions: np.ndarray | None = None) -> StepBatch:
        """One step of every row, with ``actions`` or those of ``policy`` (one call for all rows)."""
        if self.obs is None:
            self.reset()
        assert self.obs is not None
        if actions is None:
            act = policy or self.policy
            if act is None:
                raise ValueError("Collector.step(): give a policy or actions")
            start = time.perf_counter()
            actions = act(self.obs)
            self.inference_time += time.perf_counter() - start
        env_actions = self.action_to_env(actions) if self.action_to_env is not None else actions
        batch = self.worker.step(env_actions)
        if self.buffer is not None:
            self.buffer.add(self.obs, actions, batch.rewards, batch.terminated, batch.truncated, batch.final_obs, batch.valid)
        self._last = (self.obs, actions)
        self.obs = batch.obs
        self.num_steps += int(self.worker.batch_size)
        if len(batch.episode_returns):
            self.num_episodes += len(batch.episode_returns)
            self.episode_returns.extend(batch.episode_returns.tolist())
        return batch

    def collect(self, num_transitions: int, policy: Policy | None = None, gamma: float = 0.99) -> ReplaySample:
        """Take ``ceil(num_transitions / batch_size)`` steps and return the last ``num_transitions`` valid transitions.

        They are also written to the buffer (when there is one). ``next_obs`` is the real next
        observation (the final one where an episode ended); ``discounts`` is ``gamma``.
        """
        parts: list[tuple[np.ndarray, ...]] = []
        for _ in range(math.ceil(num_transitions / self.worker.batch_size)):
            batch = self.step(policy)
            obs, actions = self._last
            ended = batch.terminated | batch.truncated
            ended = ended.reshape((len(ended),) + (1,) * (batch.obs.ndim - 1))
            next_obs = np.where(ended, batch.final_obs, batch.obs)
            keep = batch.valid
            parts.append((obs[keep], np.asarray(actions)[keep], batch.rewards[keep], next_obs[keep], batch.terminated[keep], batch.truncated[keep]))
        stacked = [np.concatenate(column)[-num_transitions:] for column in zip(*parts, strict=True)]
        return ReplaySample(
            obs=stacked[0],
            actions=stacked[1],
            rewards=stacked[2],
            next_obs=stacked[3],
            terminated=stacked[4],
            truncated=stacked[5],
            discounts=np.full(len(stacked[0]), gamma, dtype=np.float32),
        )

    def sample(
        self,
        n: int,
        from_buffer: bool = True,
        policy: Policy | None = None,
        n_steps: int = 1,
        gamma: float = 0.99,
    ) -> ReplaySample:
        """ReAllY's ``sample(n, from_buffer)``: ``n`` transitions from the buffer, or ``n`` fresh ones.

        Fresh transitions (``from_buffer=False``) are collected with ``policy`` (or the
        collector's) and also stored in the buffer; they are always 1-step.
        """
        if not from_buffer:
            return self.collect(n, policy, gamma)
        if self.buffer is None:
            raise ValueError("Collector.sample(from_buffer=True) needs a replay buffer")
        return self.buffer.sample(n, n_steps=n_steps, gamma=gamma)

    def state(self) -> dict[str, Any]:
        """Counters (JSON)."""
        return {"num_steps": self.num_steps, "num_episodes": self.num_episodes}
