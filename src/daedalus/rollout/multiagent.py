"""Multi-agent rollout source: PettingZoo env copies, agents in named groups, one policy per group.

:class:`MultiAgentSource` drives a :class:`~daedalus.envs.pettingzoo.NamedMultiAgentVecEnv` and
honours the collection contract with several groups: ``sample(policies, num_steps)`` calls each
group's policy once per step for all of its rows (every copy's agents of that group) and returns
one :class:`~daedalus.rollout.contract.Trajectory` per group. ``valid`` marks the rows whose agent
acted (dead, not yet present and, in turn-based games, waiting agents are invalid); learners use
:func:`daedalus.returns.agent_gae`. :func:`evaluate_policies` plays whole episodes for evaluation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daedalus.envs.pettingzoo import GroupStep, NamedMultiAgentVecEnv, parse_row_name
from daedalus.rollout.contract import Policy, Trajectory
from daedalus.rollout.journal import EnvJournal

__all__ = [
    "GroupWorker",
    "MultiAgentEvaluation",
    "MultiAgentSource",
    "evaluate_policies",
    "critic_groups",
    "multi_agent_source",
    "pettingzoo_source",
]

#: ``transform(obs, update) -> obs`` per group (a policy's preprocessing: flattening, normalization).
Transforms = Mapping[str, Callable[[np.ndarray, bool], np.ndarray]]
_TRAILING = 20  # episodes in the trailing means of per-group returns


class MultiAgentSource:
    """A rollout source over named groups of agents (see the module docstring)."""

    def __init__(self, envs: Any, transforms: Transforms | None = None, journal: EnvJournal | None = None) -> None:
        self.envs = envs
        self.transforms = dict(transforms or {})
        self.journal = journal
        self.num_envs = envs.num_envs
        self.groups = dict(envs.groups)
        self.num_rows = dict(envs.num_rows)
        #: One agent's spaces per group.
        self.observation_spaces = dict(envs.observation_spaces)
        self.action_spaces = dict(envs.action_spaces)
        self.env_time = 0.0
        self.inference_time = 0.0
        self.obs: dict[str, np.ndarray] | None = None
        self._team_returns: list[float] = []
        self._group_returns: dict[str, list[float]] = {name: [] for name in self.groups}
        self._action_layout: list[tuple[str, tuple[int, ...], np.dtype[Any]]] = []

    # ------------------------------------------------------------------ step level

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Reset every copy (copy ``i`` with ``seed + i``); a resumed run replays its journal instead."""
        replay = self.journal.take_replay() if self.journal is not None else None
        start = time.perf_counter()
        if replay is not None:
            raw = self._replay(*replay)  # not training time: env_time is left as it was
            self.obs = {name: self._transform(name, obs, update=False) for name, obs in raw.items()}
            return self.obs
        raw = self.envs.reset(seed=seed)
        self.env_time += time.perf_counter() - start
        if self.journal is not None:
            self.journal.record_reset(seed)
        self.obs = {name: self._transform(name, obs, update=True) for name, obs in raw.items()}
        return self.obs

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, GroupStep]:
        """One step of every copy; observations in the result are transformed."""
        if self.journal is not None:
            self.journal.record(self._pack(actions))
        start = time.perf_counter()
        steps = self.envs.step(actions)
        self.env_time += time.perf_counter() - start
        first = next(iter(steps.values()))
        if len(first.team_returns):
            self._team_returns.extend(first.team_returns.tolist())
        for name, result in steps.items():
            if len(result.episode_returns):
                kept = self._group_returns[name]
                kept.extend(result.episode_returns.tolist())
                del kept[:-_TRAILING]
            if name in self.transforms:
                ended = result.terminated | result.truncated
                final_obs = self._transform(name, result.final_obs, update=False) if ended.any() else None
                result.obs = self._transform(name, result.obs, update=True)
                result.final_obs = result.obs if final_obs is None else final_obs
        self.obs = {name: result.obs for name, result in steps.items()}
        return steps

    def _transform(self, name: str, obs: np.ndarray, update: bool) -> np.ndarray:
        transform = self.transforms.get(name)
        return obs if transform is None else transform(obs, update)

    # ------------------------------------------------------------------ rollout level

    def sample(self, policies: Mapping[str, Policy], num_steps: int, policy_version: int = 0) -> dict[str, Trajectory]:
        """``num_steps`` steps of every copy, each group acting with its policy (one ``act`` per group per step)."""
        if num_steps < 1:
            raise ValueError(f"sample(): num_steps must be >= 1, got {num_steps}")
        missing = [name for name in self.groups if name not in policies]
        if missing:
            raise ValueError(f"sample(): no policy for group(s) {', '.join(missing)} (groups: {', '.join(self.groups)})")
        if self.obs is None:
            self.reset()
        assert self.obs is not None
        buffers: dict[str, dict[str, Any]] = {}
        for t in range(num_steps):
            actions: dict[str, np.ndarray] = {}
            outputs = {}
            start = time.perf_counter()
            masks = {name: self.envs.action_masks(name) for name in self.groups}
            for name in self.groups:
                mask = masks[name]
                # Masks are an extension of the Policy contract: only masked groups' policies get one.
                out = policies[name].act(self.obs[name]) if mask is None else _act_masked(policies[name], self.obs[name], mask)
                outputs[name] = out
                actions[name] = out.to_env()
            self.inference_time += time.perf_counter() - start
            obs_before = self.obs
            steps = self.step(actions)
            for name, result in steps.items():
                out = outputs[name]
                buf = buffers.get(name)
                if buf is None:
                    buf = buffers[name] = _allocate(num_steps, obs_before[name], np.asarray(out.actions), out.log_probs is not None, out.values is not None)
                buf["obs"][t] = obs_before[name]
                ended = result.terminated | result.truncated
                if ended.any():  # next_obs is filled after the loop; keep only the real final observations
                    rows = np.flatnonzero(ended)
                    buf["finals"].append((t, rows, result.final_obs[rows]))
                buf["actions"][t] = out.actions
                if "log_probs" in buf:
                    buf["log_probs"][t] = out.log_probs
                if "values" in buf:
                    buf["values"][t] = out.values
                mask = masks[name]
                if mask is not None:
                    if "action_mask" not in buf:
                        buf["action_mask"] = np.ones((num_steps, *mask.shape), dtype=bool)
                    buf["action_mask"][t] = mask
                buf["rewards"][t] = result.rewards
                buf["terminated"][t] = result.terminated
                buf["truncated"][t] = result.truncated
                buf["valid"][t] = result.valid
                if len(result.episode_returns):
                    buf["returns"].append(result.episode_returns)
                    buf["lengths"].append(result.episode_lengths)
        trajectories = {}
        for name, buf in buffers.items():
            # next_obs[t] is obs[t + 1], except where an episode ended: there, its real final observation.
            next_obs = buf["next_obs"]
            next_obs[:-1] = buf["obs"][1:]
            next_obs[-1] = self.obs[name]
            for t, rows, final in buf["finals"]:
                next_obs[t, rows] = final
            extras: dict[str, np.ndarray] = {key: buf[key] for key in ("log_probs", "values", "action_mask") if key in buf}
            trajectories[name] = Trajectory(
                obs=buf["obs"], actions=buf["actions"], rewards=buf["rewards"], terminated=buf["terminated"],
                truncated=buf["truncated"], valid=buf["valid"], next_obs=buf["next_obs"], last_obs=self.obs[name],
                extras=extras, group=name, policy_version=policy_version,
                episode_returns=np.concatenate(buf["returns"]) if buf["returns"] else np.zeros(0, dtype=np.float64),
                episode_lengths=np.concatenate(buf["lengths"]) if buf["lengths"] else np.zeros(0, dtype=np.int64),
            )
        return trajectories

    def take_team_returns(self) -> np.ndarray:
        """Team returns (all agents of a copy summed) of the copy episodes finished since the last call."""
        out = np.asarray(self._team_returns, dtype=np.float64)
        self._team_returns.clear()
        return out

    def agent_metrics(self) -> dict[str, float]:
        """``charts/<group>/episode_return``: each group's mean return per agent over its last 20 agent-episodes."""
        return {
            f"charts/{name}/episode_return": float(np.mean(returns))
            for name, returns in self._group_returns.items() if returns
        }

    def close(self) -> None:
        """Close the env copies."""
        self.envs.close()

    # ------------------------------------------------------------------ journal (exact resume)

    def _pack(self, actions: Mapping[str, np.ndarray]) -> np.ndarray:
        """Every group's actions as one float64 vector (exact for the int and float32 actions used)."""
        return np.concatenate([
            np.asarray(actions[name], dtype=np.float64).reshape(-1) for name, _, _ in self._action_space_layout()
        ])

    def _unpack(self, record: np.ndarray) -> dict[str, np.ndarray]:
        out, offset = {}, 0
        for name, shape, dtype in self._action_space_layout():
            size = int(np.prod(shape, dtype=np.int64))
            out[name] = record[offset : offset + size].reshape(shape).astype(dtype)
            offset += size
        return out

    def _action_space_layout(self) -> list[tuple[str, tuple[int, ...], np.dtype[Any]]]:
        if not self._action_layout:
            layout = []
            for name in self.groups:
                space = self.envs.action_spaces[name]
                shape = (self.num_rows[name], *(space.shape or ()))
                layout.append((name, shape, np.dtype(space.dtype)))
            self._action_layout = layout
        return self._action_layout

    def _replay(self, resets: list[dict[str, Any]], records: np.ndarray) -> dict[str, np.ndarray]:
        at = {int(r["at_step"]): r["seed"] for r in resets}
        raw: dict[str, np.ndarray] | None = None
        for index in range(len(records) + 1):
            if index in at:
                raw = self.envs.reset(seed=at[index])
            if index < len(records):
                steps = self.envs.step(self._unpack(records[index]))
                raw = {name: result.obs for name, result in steps.items()}
        if raw is None:
            raise RuntimeError("the env journal has no reset to start from")
        return raw


class GroupWorker:
    """One group of a :class:`MultiAgentSource` seen as a step-level rollout worker (``reset`` /
    ``step`` on arrays, a :class:`GroupStep` per step): what the replay loop's collector drives
    for independent Q-learning with one shared network."""

    def __init__(self, source: MultiAgentSource, group: str) -> None:
        if list(source.groups) != [group]:
            raise ValueError(f"GroupWorker needs a source with the one group '{group}' (it has {', '.join(source.groups)})")
        self.source, self.group = source, group
        self.num_envs = source.num_envs
        self.num_agents = len(source.groups[group])
        self.batch_size = source.num_rows[group]
        self.observation_space = source.observation_spaces[group]
        self.action_space = source.action_spaces[group]

    @property
    def env_time(self) -> float:
        """Seconds inside the envs (the source's)."""
        return self.source.env_time

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset (or, resuming, replay) every copy; the group's observations."""
        return self.source.reset(seed)[self.group]

    def step(self, actions: np.ndarray) -> GroupStep:
        """One step of every copy with the group's actions."""
        return self.source.step({self.group: actions})[self.group]

    def close(self) -> None:
        """Close the source."""
        self.source.close()


def _act_masked(policy: Policy, obs: np.ndarray, mask: np.ndarray, deterministic: bool = False) -> Any:
    """``policy.act`` with the legal actions (a policy of a masked group must take ``mask=``)."""
    act: Any = policy.act
    try:
        return act(obs, None, deterministic=deterministic, mask=mask)
    except TypeError as exc:
        if "mask" not in str(exc):
            raise
        raise TypeError(
            f"{type(policy).__name__}.act() does not take mask=: this env masks illegal actions, so its "
            "policies must accept act(obs, state, deterministic, mask=...)"
        ) from None


def _allocate(num_steps: int, obs: np.ndarray, actions: np.ndarray, log_probs: bool, values: bool) -> dict[str, Any]:
    rows = obs.shape[0]
    buf: dict[str, Any] = {
        "obs": np.empty((num_steps, *obs.shape), dtype=obs.dtype),
        "next_obs": np.empty((num_steps, *obs.shape), dtype=obs.dtype),
        "actions": np.empty((num_steps, *actions.shape), dtype=actions.dtype),
        "rewards": np.empty((num_steps, rows), dtype=np.float32),
        "terminated": np.empty((num_steps, rows), dtype=bool),
        "truncated": np.empty((num_steps, rows), dtype=bool),
        "valid": np.empty((num_steps, rows), dtype=bool),
        "returns": [],
        "lengths": [],
        "finals": [],  # (step, ended rows, their final observations)
    }
    if log_probs:
        buf["log_probs"] = np.empty((num_steps, rows), dtype=np.float32)
    if values:
        buf["values"] = np.empty((num_steps, rows), dtype=np.float32)
    return buf


def pettingzoo_source(
    env_id: str,
    num_envs: int = 8,
    env_args: Mapping[str, Any] | None = None,
    policy_mapping: Mapping[str, str] | None = None,
    seed: int | None = 0,
    transforms: Transforms | None = None,
) -> MultiAgentSource:
    """A source over ``num_envs`` copies of a PettingZoo env, for scripts (Coltra's ``collect_crowd_data``)::

        source = pettingzoo_source("mpe2:simple_spread_v3", num_envs=8, env_args={"continuous_actions": False})
        data = source.sample({"default": policy}, num_steps=100)   # {"default": Trajectory}

    ``policy_mapping`` (agent-name prefix -> group, longest prefix wins) defaults to one group,
    ``"default"``, holding every agent.
    """
    from daedalus.config import SHARED_POLICY, map_agents
    from daedalus.envs.pettingzoo import make_pettingzoo

    args = dict(env_args or {})

    def make_env(copy_seed: int | None) -> Any:
        return make_pettingzoo(env_id, args)

    probe = make_env(None)
    try:
        agents = list(probe.possible_agents)
    finally:
        probe.close()
    groups = map_agents(agents, policy_mapping or {"": SHARED_POLICY})
    return MultiAgentSource(NamedMultiAgentVecEnv(make_env, num_envs, groups, seed=seed), transforms)


def _subprocess_main(connection: Any, build: Callable[[], NamedMultiAgentVecEnv]) -> None:
    envs = build()
    groups = list(envs.groups)
    connection.send({
        "num_envs": envs.num_envs, "groups": envs.groups, "num_rows": envs.num_rows, "row_names": envs.row_names,
        "observation_spaces": envs.observation_spaces, "action_spaces": envs.action_spaces,
        "possible_agents": envs.possible_agents, "is_aec": envs.is_aec, "actor_inputs": envs.actor_inputs,
    })
    while True:
        command, payload = connection.recv()
        if command == "step":
            steps = envs.step(payload)
            connection.send((steps, {name: envs.action_masks(name) for name in groups}))
        elif command == "reset":
            obs = envs.reset(seed=payload)
            connection.send((obs, {name: envs.action_masks(name) for name in groups}))
        else:
            envs.close()
            connection.close()
            return


class SubprocessNamedVecEnv:
    """A :class:`~daedalus.envs.pettingzoo.NamedMultiAgentVecEnv` living in a child process
    (``rollout: {backend: subprocess}``): the policies stay here, observations, actions and
    action masks cross a pipe once per step. ``build`` (picklable) builds the vector env in the child."""

    def __init__(self, build: Callable[[], NamedMultiAgentVecEnv], start_method: str | None = None) -> None:
        import multiprocessing as mp

        context: Any = mp.get_context(start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn"))
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_subprocess_main, args=(child, build), daemon=True)
        self._process.start()
        child.close()
        info = self._connection.recv()
        self.num_envs: int = info["num_envs"]
        self.groups: dict[str, list[str]] = info["groups"]
        self.num_rows: dict[str, int] = info["num_rows"]
        self.row_names: dict[str, list[str]] = info["row_names"]
        self.observation_spaces: dict[str, Any] = info["observation_spaces"]
        self.action_spaces: dict[str, Any] = info["action_spaces"]
        self.possible_agents: list[str] = info["possible_agents"]
        self.is_aec: bool = info["is_aec"]
        self.actor_inputs: dict[str, int] = info["actor_inputs"]
        self._masks: dict[str, np.ndarray | None] = {name: None for name in self.groups}

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Reset every copy (in the child)."""
        self.reset_async(seed)
        return self.reset_wait()

    def reset_async(self, seed: int | None = None) -> None:
        """Ask the child to reset (answer with :meth:`reset_wait`)."""
        self._connection.send(("reset", seed))

    def reset_wait(self) -> dict[str, np.ndarray]:
        """The observations of the reset asked with :meth:`reset_async`."""
        obs, self._masks = self._connection.recv()
        return obs

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, GroupStep]:
        """One step of every copy (in the child)."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Mapping[str, np.ndarray]) -> None:
        """Send the actions; the child steps while this process goes on (answer with :meth:`step_wait`)."""
        self._connection.send(("step", {name: np.asarray(a) for name, a in actions.items()}))

    def step_wait(self) -> dict[str, GroupStep]:
        """The step asked with :meth:`step_async`."""
        steps, self._masks = self._connection.recv()
        return steps

    def action_masks(self, group: str) -> np.ndarray | None:
        """The masks that came with the last reset or step."""
        return self._masks[group]

    def close(self) -> None:
        """Stop the child process."""
        import contextlib

        if self._process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._connection.send(("close", None))
            self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
        self._connection.close()


class ParallelNamedVecEnv:
    """``num_envs`` copies split into contiguous slices, one :class:`SubprocessNamedVecEnv` (a child
    process) per slice, stepped at the same time (``rollout: {vectorization: async}``): what SB3's
    SubprocVecEnv and RLlib's env runners do, for PettingZoo copies.

    Copy ``i`` is built and reset with ``seed + i`` whichever child holds it, so the steps equal
    :class:`~daedalus.envs.pettingzoo.NamedMultiAgentVecEnv`'s over all copies: rows are laid out
    copy-major, and a child's rows, episode rows and ended copies are shifted by its slice's start.
    ``build(num_envs, seed)`` (picklable) builds one slice's vector env.
    """

    def __init__(self, build: Callable[[int, int | None], NamedMultiAgentVecEnv], num_envs: int, workers: int, seed: int | None) -> None:
        from functools import partial

        from daedalus.envs.pettingzoo import row_name

        sizes = [len(part) for part in np.array_split(np.arange(num_envs), max(1, min(workers, num_envs)))]
        self.starts = [int(start) for start in np.cumsum([0, *sizes[:-1]])]
        self.children: list[SubprocessNamedVecEnv] = []
        try:
            for start, size in zip(self.starts, sizes, strict=True):
                self.children.append(SubprocessNamedVecEnv(partial(build, size, None if seed is None else seed + start)))
        except BaseException:
            self.close()
            raise
        first = self.children[0]
        self.num_envs = num_envs
        self.groups: dict[str, list[str]] = first.groups
        self.num_rows: dict[str, int] = {name: num_envs * len(agents) for name, agents in self.groups.items()}
        self.row_names: dict[str, list[str]] = {
            name: [row_name(agent, copy) for copy in range(num_envs) for agent in agents] for name, agents in self.groups.items()
        }
        self.observation_spaces, self.action_spaces = first.observation_spaces, first.action_spaces
        self.possible_agents, self.is_aec, self.actor_inputs = first.possible_agents, first.is_aec, first.actor_inputs
        self._seed = seed

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Reset every copy, every child at once (copy ``i`` with ``seed + i``)."""
        seed = self._seed if seed is None else seed
        for child, start in zip(self.children, self.starts, strict=True):
            child.reset_async(None if seed is None else seed + start)
        parts = [child.reset_wait() for child in self.children]
        return {name: np.concatenate([part[name] for part in parts]) for name in self.groups}

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, GroupStep]:
        """One step of every copy: each child gets its rows' actions, all step at once."""
        for child, start in zip(self.children, self.starts, strict=True):
            child.step_async({
                name: np.asarray(actions[name])[start * len(agents):(start + child.num_envs) * len(agents)]
                for name, agents in self.groups.items()
            })
        parts = [child.step_wait() for child in self.children]
        return {name: self._merge(name, [part[name] for part in parts]) for name in self.groups}

    def _merge(self, name: str, parts: list[GroupStep]) -> GroupStep:
        per_copy = len(self.groups[name])

        def joined(field: str) -> np.ndarray:
            return np.concatenate([getattr(part, field) for part in parts])

        step = GroupStep(joined("obs"), joined("rewards"), joined("terminated"), joined("truncated"), joined("final_obs"), joined("valid"))
        step.episode_returns, step.episode_lengths = joined("episode_returns"), joined("episode_lengths")
        step.episode_rows = np.concatenate([part.episode_rows + start * per_copy for part, start in zip(parts, self.starts, strict=True)])
        step.team_returns, step.team_lengths = joined("team_returns"), joined("team_lengths")
        step.ended_copies = np.concatenate([part.ended_copies + start for part, start in zip(parts, self.starts, strict=True)])
        return step

    def action_masks(self, group: str) -> np.ndarray | None:
        """Every child's masks, row after row (None while no child has any)."""
        masks = [child.action_masks(group) for child in self.children]
        known = [mask for mask in masks if mask is not None]
        if not known:
            return None
        width = known[0].shape[1]
        return np.concatenate([
            mask if mask is not None else np.ones((child.num_envs * len(self.groups[group]), width), dtype=bool)
            for mask, child in zip(masks, self.children, strict=True)
        ])

    def close(self) -> None:
        """Stop every child."""
        for child in self.children:
            child.close()


def multi_agent_source(
    context: Any,
    groups: Mapping[str, list[str]],
    transforms: Transforms | None = None,
    one_hot: Collection[str] = (),
    critics: Mapping[str, str] | None = None,
) -> MultiAgentSource:
    """The source a multi-agent run's context describes: ``num_envs`` copies, agents in ``groups``
    (the groups in ``one_hot`` get a one-hot of the agent's index appended to observations)."""
    from functools import partial

    if getattr(context, "backend", "local") == "ray":
        from daedalus.rollout.ray_source import ray_multi_agent_source

        return ray_multi_agent_source(context, groups, one_hot, critics)  # type: ignore[return-value]
    settings = {
        "one_hot_agent_id": list(one_hot), "centralized_critic": critic_groups(critics)[0], "state_critic": critic_groups(critics)[1],
    }
    backend, vectorization = getattr(context, "backend", "local"), getattr(context, "vectorization", "auto")
    envs: Any
    if backend == "local" and vectorization == "async" and context.num_envs > 1:
        workers = min(context.num_envs, os.cpu_count() or 1)
        envs = ParallelNamedVecEnv(partial(_slice, context.make_env, dict(groups), settings), context.num_envs, workers, context.seed)
    else:
        build = partial(NamedMultiAgentVecEnv, context.make_env, context.num_envs, dict(groups), seed=context.seed, **settings)
        envs = SubprocessNamedVecEnv(build) if backend == "subprocess" else build()
    return MultiAgentSource(envs, transforms, context.journal)


def _slice(make_env: Callable[[int | None], Any], groups: dict[str, list[str]], settings: dict[str, Any], num_envs: int, seed: int | None) -> NamedMultiAgentVecEnv:
    """One slice of a :class:`ParallelNamedVecEnv` (module level: it travels to the child)."""
    return NamedMultiAgentVecEnv(make_env, num_envs, groups, seed=seed, **settings)


# --------------------------------------------------------------------------- evaluation


@dataclass
class MultiAgentEvaluation:
    """Returns of ``n`` whole episodes: the team's (every agent of a copy summed) and each agent's."""

    team_returns: list[float]
    #: Agent name (without the copy) -> its return in each episode it took part in.
    agent_returns: dict[str, list[float]] = field(default_factory=dict)
    #: Agent name -> the policy that acted for it.
    policy_of: dict[str, str] = field(default_factory=dict)
    team_lengths: list[int] = field(default_factory=list)

    @property
    def mean_team_return(self) -> float:
        """Mean team return over the episodes."""
        return float(np.mean(self.team_returns)) if self.team_returns else float("nan")

    @property
    def std_team_return(self) -> float:
        """Population standard deviation of the team return."""
        return float(np.std(self.team_returns)) if self.team_returns else float("nan")

    @property
    def mean_return(self) -> float:
        """The team return's mean (what runs list and the training schedule call the return)."""
        return self.mean_team_return

    @property
    def std_return(self) -> float:
        """The team return's standard deviation."""
        return self.std_team_return

    @property
    def returns(self) -> list[float]:
        """Team returns, in the order the episodes finished."""
        return list(self.team_returns)

    def format(self) -> str:
        """``team return -52.10 ± 8.31 over 20 episodes | adversary: 12.40 per agent | ...``."""
        parts = [f"team return {self.mean_team_return:.2f} ± {self.std_team_return:.2f} over {len(self.team_returns)} episodes"]
        policies = self.policy_means()
        if len(policies) > 1 or len(self.agent_returns) > 1:
            parts += [f"{name}: {value:.2f} per agent" for name, value in policies.items()]
            parts.append("agents: " + ", ".join(f"{agent} {value:.2f}" for agent, value in self.agent_means().items()))
        return " | ".join(parts)

    def policy_means(self) -> dict[str, float]:
        """Per policy: the mean return of one of its agents (over its agents and the episodes)."""
        out: dict[str, list[float]] = {}
        for agent, returns in self.agent_returns.items():
            out.setdefault(self.policy_of.get(agent, "?"), []).extend(returns)
        return {name: float(np.mean(values)) for name, values in out.items() if values}

    def agent_means(self) -> dict[str, float]:
        """Per agent: its mean return."""
        return {agent: float(np.mean(values)) for agent, values in self.agent_returns.items() if values}

    def to_dict(self) -> dict[str, Any]:
        """JSON: team mean ± std, per policy and per agent means, and the raw returns."""
        return {
            "episodes": len(self.team_returns),
            "mean_return": self.mean_team_return,
            "std_return": self.std_team_return,
            "team_returns": list(self.team_returns),
            "policies": self.policy_means(),
            "agents": self.agent_means(),
        }


def evaluate_policies(
    context: Any,
    groups: Mapping[str, list[str]],
    policies: Mapping[str, Policy],
    n_episodes: int,
    deterministic: bool = True,
    seed: int | None = None,
    transforms: Transforms | None = None,
    num_envs: int = 8,
    one_hot: Collection[str] = (),
    critics: Mapping[str, str] | None = None,
) -> MultiAgentEvaluation:
    """Play exactly ``n_episodes`` whole episodes, episode ``i`` reset with ``seed + i`` (as the
    single-agent evaluation does), each group acting with its policy; results in episode order.

    Episodes run in waves of up to ``num_envs`` copies in lockstep; a copy that finishes first
    plays on (that play is not counted) until the wave's last episode ends.
    """
    if transforms is None:
        transforms = policy_transforms(policies)
    result = MultiAgentEvaluation([], {}, {agent: name for name, agents in groups.items() for agent in agents})
    first_episode = 0
    while first_episode < n_episodes:
        copies = min(n_episodes - first_episode, max(1, num_envs))
        wave_seed = None if seed is None else seed + first_episode
        envs = NamedMultiAgentVecEnv(
            context.make_env, copies, groups, seed=wave_seed, one_hot_agent_id=list(one_hot), centralized_critic=critic_groups(critics)[0], state_critic=critic_groups(critics)[1]
        )
        try:
            play_wave(envs, policies, transforms, deterministic, wave_seed, result)
        finally:
            envs.close()
        first_episode += copies
    return result


def critic_groups(critics: Mapping[str, str] | None) -> tuple[list[str], list[str]]:
    """``(centralized_critic, state_critic)`` groups of ``NamedMultiAgentVecEnv`` for a ``{group: critic}`` map."""
    critics = critics or {}
    return (
        [name for name, kind in critics.items() if kind == "centralized"],
        [name for name, kind in critics.items() if kind == "state"],
    )


def policy_transforms(policies: Mapping[str, Policy]) -> dict[str, Callable[[np.ndarray, bool], np.ndarray]]:
    """Each policy's own observation preprocessing (an actor-critic's ``preprocess``), where it has one."""
    found = {name: _policy_transform(policy) for name, policy in policies.items()}
    return {name: transform for name, transform in found.items() if transform is not None}


def play_wave(
    envs: NamedMultiAgentVecEnv,
    policies: Mapping[str, Policy],
    transforms: Transforms,
    deterministic: bool,
    seed: int | None,
    result: MultiAgentEvaluation,
    on_frame: Callable[[bool], None] | None = None,
) -> None:
    """One episode per copy (copy ``i`` reset with ``seed + i``), added to ``result`` in copy order.

    ``on_frame(copy_0_ended)`` is called after the reset and after every step (for videos).
    """
    copies = envs.num_envs
    finished = np.zeros(copies, dtype=bool)
    team: list[tuple[float, int]] = [(0.0, 0)] * copies
    agents: list[dict[str, float]] = [{} for _ in range(copies)]
    raw = envs.reset(seed=seed)
    if on_frame is not None:
        on_frame(False)
    while not finished.all():
        actions = {}
        for name, obs in raw.items():
            transform = transforms.get(name)
            mask = envs.action_masks(name)
            seen = obs if transform is None else transform(obs, False)
            out = (
                policies[name].act(seen, None, deterministic=deterministic) if mask is None
                else _act_masked(policies[name], seen, mask, deterministic)
            )
            actions[name] = out.to_env()
        steps = envs.step(actions)
        for name, step in steps.items():
            for row, value in zip(step.episode_rows.tolist(), step.episode_returns.tolist(), strict=True):
                agent, copy = parse_row_name(envs.row_names[name][row])
                if not finished[copy]:
                    agents[copy][agent] = float(value)
        first = next(iter(steps.values()))
        for value, length, copy in zip(first.team_returns.tolist(), first.team_lengths.tolist(), first.ended_copies.tolist(), strict=True):
            if not finished[copy]:
                team[copy] = (float(value), int(length))
                finished[copy] = True
        raw = {name: step.obs for name, step in steps.items()}
        if on_frame is not None:
            on_frame(bool(finished[0]))
    for copy in range(copies):
        result.team_returns.append(team[copy][0])
        result.team_lengths.append(team[copy][1])
        for agent, value in agents[copy].items():
            result.agent_returns.setdefault(agent, []).append(value)


def _policy_transform(policy: Any) -> Callable[[np.ndarray, bool], np.ndarray] | None:
    agent = getattr(policy, "agent", None)
    preprocess = getattr(agent, "preprocess", None)
    return None if preprocess is None else (lambda obs, update: preprocess(obs, update_stats=False))
