"""Local rollout sources: envs in this process or in one child process, behind the collection contract.

:class:`LocalSource` drives a :class:`~daedalus.rollout.worker.RolloutWorker` (a
:class:`~daedalus.rollout.worker.SerialWorker` in this process or a
:class:`~daedalus.rollout.worker.SubprocessWorker` in a child) for training, and plays whole
episodes on separate single-env copies for evaluation. :class:`SingleEnv` is the step-at-a-time
path of stepwise agents. Together with the workers, this package is the only place where
``env.step`` and ``env.reset`` are called.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from daedalus.rollout.contract import (
    DEFAULT_GROUP,
    EpisodeStats,
    FrameCallback,
    Policy,
    StepBatch,
    Trajectory,
)
from daedalus.rollout.journal import EnvJournal
from daedalus.rollout.worker import RolloutWorker

__all__ = ["LocalSource", "SingleEnv", "local_source", "play_episodes"]

#: ``obs_transform(obs, update) -> obs``: e.g. running observation normalization; ``update``
#: is True for observations the policy acts on (statistics move), False for final ones.
ObsTransform = Callable[[np.ndarray, bool], np.ndarray]


class LocalSource:
    """A :class:`~daedalus.rollout.contract.RolloutSource` on one local worker.

    ``make_env(seed)`` builds the single-env copies that :meth:`episodes` plays on (kept and
    reused between calls). ``obs_transform`` is applied to every observation that leaves the
    worker (VecNormalize-style observation normalization lives there, so trajectories hold
    what the policy saw).
    """

    def __init__(
        self,
        worker: RolloutWorker,
        make_env: Callable[[int | None], Any] | None = None,
        obs_transform: ObsTransform | None = None,
    ) -> None:
        self.worker = worker
        self.make_env = make_env
        self.obs_transform = obs_transform
        self.num_envs = worker.num_envs
        self.num_agents = worker.num_agents
        self.batch_size = worker.batch_size
        self.observation_space = worker.observation_space
        self.action_space = worker.action_space
        self.inference_time = 0.0
        self.obs: np.ndarray | None = None
        self._policy_state: Any = None
        self._episode_envs = EpisodeEnvs(make_env)
        #: Records every reset and action for exact resume (set by the run; see :mod:`daedalus.rollout.journal`).
        self.journal: EnvJournal | None = None
        self._env_time_offset = 0.0  # env time spent replaying a journal: not training time

    @property
    def env_time(self) -> float:
        """Seconds inside ``env.step`` / ``env.reset`` of the training envs (measured by the worker)."""
        return float(self.worker.env_time) - self._env_time_offset

    # ------------------------------------------------------------------ step level

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env copy; the next :meth:`sample` continues from the returned observations.

        In a resumed run (a journal with records to replay) this instead brings the envs back
        to where the interrupted run left them: the recorded resets and actions are stepped
        again, without the policy.
        """
        replay = self.journal.take_replay() if self.journal is not None else None
        if replay is not None:
            return self._replay(*replay)
        obs = self.worker.reset(seed=seed)
        if self.journal is not None:
            self.journal.record_reset(seed)
        self.obs = self._transform(obs, update=True)
        self._policy_state = None
        return self.obs

    def _replay(self, resets: list[dict[str, Any]], actions: np.ndarray) -> np.ndarray:
        start_time = self.worker.env_time
        at = {int(r["at_step"]): r["seed"] for r in resets}
        obs = None
        for index in range(len(actions) + 1):
            if index in at:
                obs = self.worker.reset(seed=at[index])
            if index < len(actions):
                obs = self.worker.step(actions[index]).obs
        if obs is None:
            raise RuntimeError("the env journal has no reset to start from")
        self._env_time_offset += self.worker.env_time - start_time
        # The statistics of an observation transform were saved after they had seen this
        # observation: normalize it with them, without counting it twice.
        self.obs = self._transform(obs, update=False)
        self._policy_state = None
        return self.obs

    def step(self, env_actions: np.ndarray) -> StepBatch:
        """One step of every row; observations in the result are already transformed."""
        if self.journal is not None:
            self.journal.record(env_actions)
        batch = self.worker.step(env_actions)
        if self.obs_transform is not None:
            ended = batch.terminated | batch.truncated
            if ended.any():
                batch.final_obs = self._transform(batch.final_obs, update=False)
            else:
                batch.final_obs = batch.obs  # unspecified where nothing ended
            batch.obs = self._transform(batch.obs, update=True)
        self.obs = batch.obs
        return batch

    def _transform(self, obs: np.ndarray, update: bool) -> np.ndarray:
        return obs if self.obs_transform is None else self.obs_transform(obs, update)

    # ------------------------------------------------------------------ rollout level

    def sample(self, policies: Mapping[str, Policy], num_steps: int, policy_version: int = 0) -> dict[str, Trajectory]:
        """``num_steps`` steps of every row with the group's policy: one ``act`` per step for all rows."""
        if num_steps < 1:
            raise ValueError(f"sample(): num_steps must be >= 1, got {num_steps}")
        policy = _only_group(policies)
        if self.obs is None:
            self.reset()
        assert self.obs is not None
        rows = self.batch_size
        obs_buf = actions_buf = log_probs = values = None
        rewards = np.empty((num_steps, rows), dtype=np.float32)
        terminated = np.empty((num_steps, rows), dtype=bool)
        truncated = np.empty((num_steps, rows), dtype=bool)
        valid = np.empty((num_steps, rows), dtype=bool)
        returns: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        finals: list[tuple[int, np.ndarray, np.ndarray]] = []  # (step, ended rows, their final obs)
        state = self._policy_state  # per row; continues across calls, restarts with each episode
        clock = time.perf_counter
        # Without an observation transform the worker's step is this source's step: call it directly.
        step = self.worker.step if self.obs_transform is None and self.journal is None else self.step
        for t in range(num_steps):
            obs = self.obs
            if obs_buf is None:
                obs_buf = np.empty((num_steps, *obs.shape), dtype=obs.dtype)
            # Copied before the step: an env may hand out a buffer it overwrites in place.
            obs_buf[t] = obs
            start = clock()
            out = policy.act(obs, state)
            self.inference_time += clock() - start
            state = out.state
            batch = step(out.actions if out.env_actions is None else out.env_actions)
            self.obs = batch.obs
            if actions_buf is None:  # allocate once the shapes and dtypes are known
                actions = np.asarray(out.actions)
                actions_buf = np.empty((num_steps, *actions.shape), dtype=actions.dtype)
                if out.log_probs is not None:
                    log_probs = np.empty((num_steps, rows), dtype=np.float32)
                if out.values is not None:
                    values = np.empty((num_steps, rows), dtype=np.float32)
            actions_buf[t] = out.actions
            if log_probs is not None:
                log_probs[t] = out.log_probs
            if values is not None:
                values[t] = out.values
            rewards[t] = batch.rewards
            terminated[t] = batch.terminated
            truncated[t] = batch.truncated
            valid[t] = batch.valid
            if len(batch.episode_returns):  # some episode ended at this step
                ended = np.flatnonzero(batch.terminated | batch.truncated)
                finals.append((t, ended, batch.final_obs[ended]))
                returns.append(batch.episode_returns)
                lengths.append(batch.episode_lengths)
            if isinstance(state, list):
                # A row's state restarts with its next episode: after the step that ended it, and
                # (NEXT_STEP autoreset) after the reset step whose action was ignored.
                for row in np.flatnonzero((batch.terminated | batch.truncated) | ~batch.valid):
                    state[row] = None
        assert obs_buf is not None and actions_buf is not None and self.obs is not None
        self._policy_state = state
        # next_obs[t] is obs[t + 1], except where an episode ended: there, its real final observation.
        next_buf = np.empty_like(obs_buf)
        next_buf[:-1] = obs_buf[1:]
        next_buf[-1] = self.obs
        for t, ended, final in finals:
            next_buf[t, ended] = final
        extras = {name: array for name, array in (("log_probs", log_probs), ("values", values)) if array is not None}
        trajectory = Trajectory(
            obs=obs_buf, actions=actions_buf, rewards=rewards, terminated=terminated, truncated=truncated,
            valid=valid, next_obs=next_buf, last_obs=self.obs, extras=extras, group=DEFAULT_GROUP,
            policy_version=policy_version,
            episode_returns=np.concatenate(returns) if returns else np.zeros(0, dtype=np.float64),
            episode_lengths=np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64),
        )
        return {DEFAULT_GROUP: trajectory}

    def episodes(
        self,
        policies: Mapping[str, Policy],
        n: int,
        deterministic: bool = True,
        seed: int | None = None,
        max_steps: int | None = None,
        on_frame: FrameCallback | None = None,
        num_envs: int | None = None,
    ) -> EpisodeStats:
        """Play exactly ``n`` episodes on up to ``num_envs`` (default ``n``) env copies in lockstep.

        Episode ``i`` is reset with ``seed + i`` whichever copy plays it, so the result does not
        depend on how many copies run. The copies are built once with ``make_env`` and reused.
        """
        return self._episode_envs.play(
            "LocalSource", _only_group(policies), n, deterministic, seed, max_steps, on_frame, num_envs,
            obs_transform=None if self.obs_transform is None else (lambda obs: self._transform(obs, update=False)),
        )

    def close(self) -> None:
        """Close the worker and the episode env copies."""
        self.worker.close()
        self._episode_envs.close()


def local_source(
    make_env: Callable[[int | None], Any],
    num_envs: int,
    env_id: str,
    env_args: dict[str, Any],
    vectorization: str = "auto",
    seed: int | None = None,
    backend: str = "local",
    obs_transform: ObsTransform | None = None,
    journal: EnvJournal | None = None,
) -> LocalSource:
    """The rollout source a profile asks for: ``num_envs`` copies vectorized as ``vectorization``,
    stepped in this process (``backend: local``) or in one child process (``subprocess``)."""
    from functools import partial

    from daedalus.envs.vector import make_vec_env
    from daedalus.rollout.worker import SerialWorker, SubprocessWorker

    if backend not in ("local", "subprocess"):
        raise ValueError(f"unknown rollout backend {backend!r}: use 'local' or 'subprocess'")
    build = partial(make_vec_env, make_env, num_envs, env_id, env_args, vectorization, seed)
    worker = SubprocessWorker(build) if backend == "subprocess" else SerialWorker(build())
    source = LocalSource(worker, make_env, obs_transform)
    source.journal = journal
    return source


def _only_group(policies: Mapping[str, Policy]) -> Policy:
    if DEFAULT_GROUP in policies:
        return policies[DEFAULT_GROUP]
    if len(policies) == 1:
        return next(iter(policies.values()))
    raise ValueError(f"this source has one group ('{DEFAULT_GROUP}'); got policies for {sorted(policies)}")


# --------------------------------------------------------------------------- whole episodes


class EpisodeEnvs:
    """Single env copies for whole episodes (evaluation, replay), built with ``make_env`` when first
    needed (copy ``i`` with ``seed + i``) and reused; the part of ``episodes()`` every source shares."""

    def __init__(self, make_env: Callable[[int | None], Any] | None) -> None:
        self.make_env = make_env
        self.envs: list[Any] = []

    def play(
        self,
        owner: str,
        policy: Policy,
        n: int,
        deterministic: bool,
        seed: int | None,
        max_steps: int | None,
        on_frame: FrameCallback | None,
        num_envs: int | None,
        obs_transform: Callable[[Any], Any] | None = None,
    ) -> EpisodeStats:
        """:func:`play_episodes` on up to ``num_envs`` (default ``n``) of the copies; ``owner`` names
        the source in the error when it has no ``make_env``."""
        if self.make_env is None:
            raise ValueError(f"{owner}.episodes() needs make_env (single env copies to play on)")
        count = max(1, min(n, num_envs or n))
        while len(self.envs) < count:
            index = len(self.envs)
            self.envs.append(self.make_env(None if seed is None else seed + index))
        return play_episodes(self.envs[:count], policy, n, deterministic, seed, max_steps, on_frame, obs_transform=obs_transform)

    def close(self) -> None:
        """Close every copy built so far (idempotent)."""
        for env in self.envs:
            env.close()
        self.envs.clear()



def play_episodes(
    envs: list[Any],
    policy: Policy,
    n: int,
    deterministic: bool = True,
    seed: int | None = None,
    max_steps: int | None = None,
    on_frame: FrameCallback | None = None,
    obs_transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> EpisodeStats:
    """Run ``n`` episodes on ``envs`` in lockstep, one ``policy.act`` per step for all active envs.

    Each env plays episode ``i`` to its end and then takes the next episode index not yet
    started, so exactly ``n`` episodes run, each to completion (termination, truncation or
    ``max_steps``), and results are stored by episode index — not in the order episodes
    finish, which would favour short ones. The policy's ``state`` is kept per env and starts
    at ``None`` with every episode.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    returns = [0.0] * n
    lengths = [0] * n
    slot_episode: list[int | None] = list(range(len(envs)))
    observations: list[Any] = [None] * len(envs)
    states: list[Any] = [None] * len(envs)
    for index, env in enumerate(envs):
        if index >= n:
            slot_episode[index] = None
            continue
        observations[index], _ = env.reset(seed=_episode_seed(seed, index))
        if on_frame is not None:
            on_frame(index, env)
    next_episode = min(len(envs), n)
    while True:
        active = [j for j, episode in enumerate(slot_episode) if episode is not None]
        if not active:
            return EpisodeStats(returns, lengths)
        batch_obs = stack_observations([observations[j] for j in active])
        if obs_transform is not None:
            batch_obs = obs_transform(batch_obs)
        state = [states[j] for j in active] if any(states[j] is not None for j in active) else None
        out = policy.act(batch_obs, state, deterministic=deterministic)
        actions = out.to_env()
        next_states = out.state
        for row, j in enumerate(active):
            episode = slot_episode[j]
            assert episode is not None
            env = envs[j]
            observations[j], reward, terminated, truncated, _ = env.step(actions[row])
            states[j] = next_states[row] if isinstance(next_states, list) else None
            if on_frame is not None:
                on_frame(j, env)
            returns[episode] += float(reward)
            lengths[episode] += 1
            if terminated or truncated or (max_steps is not None and lengths[episode] >= max_steps):
                states[j] = None
                if next_episode < n:
                    slot_episode[j] = next_episode
                    observations[j], _ = env.reset(seed=_episode_seed(seed, next_episode))
                    if on_frame is not None:
                        on_frame(j, env)
                    next_episode += 1
                else:
                    slot_episode[j] = None


def _episode_seed(seed: int | None, episode: int) -> int | None:
    return None if seed is None else seed + episode


def stack_observations(observations: list[Any]) -> Any:
    """Batch observations along a new first axis; dict and tuple observations per entry."""
    first = observations[0]
    if isinstance(first, dict):
        return {key: stack_observations([obs[key] for obs in observations]) for key in first}
    if isinstance(first, tuple):
        return tuple(stack_observations([obs[i] for obs in observations]) for i in range(len(first)))
    return np.stack([np.asarray(obs) for obs in observations])


# --------------------------------------------------------------------------- one env, one step


class SingleEnv:
    """One env stepped one action at a time: the per-step path of stepwise (Gym Loop) agents.

    Their ``act`` / ``memorize`` / ``update`` run between every two steps, so nothing can be
    batched; this keeps ``env.step`` inside the rollout package and times it.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.env_time = 0.0

    @property
    def action_space(self) -> Any:
        """The env's action space."""
        return self.env.action_space

    @property
    def observation_space(self) -> Any:
        """The env's observation space."""
        return self.env.observation_space

    def reset(self, seed: int | None = None) -> tuple[Any, dict[str, Any]]:
        """``env.reset(seed=seed)``."""
        start = time.perf_counter()
        result = self.env.reset(seed=seed)
        self.env_time += time.perf_counter() - start
        return result

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """``env.step(action)``."""
        start = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.env_time += time.perf_counter() - start
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self) -> Any:
        """``env.render()``."""
        return self.env.render()

    def close(self) -> None:
        """``env.close()``."""
        self.env.close()
