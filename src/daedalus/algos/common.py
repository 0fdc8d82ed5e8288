"""What every built-in algorithm shares besides its own loss: the rollout source, the one training
schedule, exact-resume state, and the replay loop of DQN, SAC and TD3.

- :func:`make_source` / :func:`default_context`: the rollout source a context describes, and a context for Crete-style calls;
- :func:`optimizer_tensors` / :func:`load_optimizer`, :func:`rng_tensors`: exact-resume state as
  named tensors + JSON (nothing is pickled);
- :class:`TrainingSchedule`: the training clock (evaluation and checkpoint time excluded),
  periodic logging with the env / inference / learn split, periodic evaluation into
  ``artifacts["evaluations"]``, ``best`` and ``step-<N>`` checkpoints, early stop at
  ``target_return``, and ``artifacts["time_split"]``.

The algorithm files keep everything that *is* the algorithm; this module only keeps the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import torch

from daedalus.hooks import CheckpointSaved, EvalEnd, Hooks, RolloutEnd, UpdateEnd
from daedalus.nn.optim import Optimizer
from daedalus.rollout.collector import Collector
from daedalus.rollout.contract import DEFAULT_GROUP, ActOutput
from daedalus.rollout.source import ObsTransform, local_source
from daedalus.types import TrainContext

__all__ = [
    "TrainingSchedule",
    "custom_loss",
    "train_replay",
    "default_context",
    "load_optimizer",
    "make_source",
    "optimizer_tensors",
    "restore_torch_threads",
    "set_torch_threads",
]


class _NullSink:
    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def close(self) -> None: ...
    def update(self, steps: int | None = None, episodes: int | None = None, last_return: float | None = None, **extra: float) -> None: ...


def default_context(
    agent_id: str,
    env_factory: Callable[[int | None], Any],
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None,
    num_envs: int = 1,
) -> TrainContext:
    """A context for a call without the run machinery: ``num_envs`` sync envs, checkpoints through ``save_callback``."""
    return TrainContext(
        profile_id=agent_id, agent_id=agent_id, env_id="", env_args={}, num_envs=num_envs, seed=0, vectorization="sync",
        device="cpu", config=None,  # type: ignore[arg-type]
        make_env=env_factory, logger=_NullSink(), progress=_NullSink(),
        checkpoint=lambda a, name, step: save_callback(a, artifacts, step, name) if save_callback else None,
    )


def make_source(context: TrainContext, obs_transform: ObsTransform | None = None, obs_stats: Any = None) -> Any:
    """The rollout source the context describes (the profile's ``rollout`` section); built by the
    rollout package, never here. ``obs_stats``: the running observation statistics that remote
    workers send their observation moments to (``backend: ray``)."""
    if context.backend == "ray":
        from daedalus.rollout.ray_source import ray_source

        return ray_source(context, obs_transform, obs_stats)
    return local_source(
        context.make_env, context.num_envs, context.env_id, context.env_args, context.vectorization,
        context.seed, context.backend, obs_transform, context.journal,
    )


def custom_loss(context: TrainContext | None, ref: str | None, default: Callable[..., Any]) -> Callable[..., Any]:
    """The loss a config names (``config.loss``), else the algorithm's own.

    The reference is resolved by the run (relative to the profile, under its trust rules);
    outside a run, as a plain reference. A custom loss always runs through autograd: the
    algorithms only use their hand-derived gradient for their own loss.
    """
    if ref is None:
        return default
    if context is not None and context.resolve is not None:
        return context.resolve(ref)
    from daedalus.registry import resolve_ref

    return resolve_ref(ref)


def set_torch_threads(threads: int) -> int:
    """Set torch's CPU threads (``0`` keeps the default) and flush denormals; returns the previous thread count.

    Flushing denormal floats to zero matters for off-policy training: Adam's second-moment
    estimates of weights whose gradient became 0 (dead ReLUs) decay into the denormal range,
    where x86 arithmetic is ~10x slower (measured: fused Adam on a 67k-parameter Q-network
    0.58 ms -> 0.07 ms per step). Undone by :func:`restore_torch_threads`.
    """
    previous = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    return previous


def restore_torch_threads(previous: int) -> None:
    """Undo :func:`set_torch_threads` (torch's default keeps denormals)."""
    torch.set_num_threads(previous)
    torch.set_flush_denormal(False)


# --------------------------------------------------------------------------- state


def optimizer_tensors(prefix: str, optimizer: Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Per-parameter optimizer state as named tensors, and the param groups (minus params) as JSON."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}/{index}/{key}": torch.as_tensor(value)
        for index, per_param in state["state"].items()
        for key, value in per_param.items()
    }
    groups = [{k: v for k, v in group.items() if k != "params"} for group in state["param_groups"]]
    return tensors, groups


def load_optimizer(prefix: str, optimizer: Optimizer, tensors: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state = optimizer.state_dict()
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "/"):
            index, name = key[len(prefix) + 1 :].split("/", 1)
            per_param.setdefault(int(index), {})[name] = value.clone()
    state["state"] = per_param
    for group, saved in zip(state["param_groups"], groups, strict=False):
        group.update(saved)
    optimizer.load_state_dict(state)


def numpy_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy Generator's state as JSON (PCG64's 128-bit integers are plain Python ints)."""
    return dict(rng.bit_generator.state)


# --------------------------------------------------------------------------- schedule


class TrainingSchedule:
    """Logging, evaluation, checkpoints and the training clock of one training call — for every algorithm.

    ``agent`` must have ``global_step``, ``num_episodes`` and ``predict``; ``config`` the fields
    ``log_every_steps``, ``eval_every_steps``, ``eval_episodes``, ``eval_deterministic``,
    ``checkpoint_every_steps``, ``total_steps`` and ``target_return``. ``timing`` is what
    measures env and inference seconds (a rollout source or a collector: ``env_time``,
    ``inference_time``). Loops add finished episodes with :meth:`add_episodes` and learning
    time to :attr:`learn_time`, then call :meth:`step` once per collection; every run gets
    the same metric vocabulary (docs/runs.md).
    """

    def __init__(
        self,
        agent: Any,
        config: Any,
        context: TrainContext,
        env_factory: Callable[[int | None], Any],
        artifacts: dict[str, Any],
        timing: Any,
        evaluator: Callable[[int, bool, int | None], tuple[float, float, tuple[float, ...], dict[str, float]]] | None = None,
    ) -> None:
        self.agent, self.config, self.context = agent, config, context
        #: ``evaluator(n_episodes, deterministic, seed) -> (mean, std, returns, extra metrics)``;
        #: default: :func:`daedalus.evaluation.evaluate` of the agent on ``env_factory`` copies.
        self.evaluator = evaluator
        self.env_factory, self.artifacts, self.timing = env_factory, artifacts, timing
        self.evaluations: list[dict[str, float]] = artifacts.setdefault("evaluations", [])
        self.best_return = max((e["mean_return"] for e in self.evaluations), default=-np.inf)
        # Returns of finished episodes, in order (a resumed run starts with the last ones it saved,
        # so that the logged trailing mean continues).
        self.episode_returns: list[float] = list(context.extras.get("recent_returns", ()))
        self.learn_time = 0.0
        self.start = time.perf_counter()
        self.excluded_time = 0.0  # evaluation and checkpoints: not on the training clock
        #: Training seconds of the sessions before this one (a resumed run's evaluations continue the clock).
        self.time_offset = float(context.extras.get("train_seconds", 0.0))
        self._paused_at = 0.0  # the training clock when evaluation and checkpoints began
        step = self.start_step = agent.global_step  # steps/s counts this call's steps only
        # Log, evaluation and checkpoint times lie on a grid from step 0, so that a resumed run
        # evaluates (and draws evaluation randomness) exactly where an uninterrupted one would.
        self.next_log = _next_multiple(step, config.log_every_steps)
        self.next_eval = _next_multiple(step, config.eval_every_steps) if config.eval_every_steps > 0 else None
        self.next_checkpoint = _next_multiple(step, config.checkpoint_every_steps) if config.checkpoint_every_steps > 0 else None
        self.eval_seed = (context.seed if context.seed is not None else 0) + 10_000
        self.hooks: Hooks = context.hooks
        self.hooks.graceful = True  # this loop stops at a clean point when the run is interrupted
        self.stop_reason: str | None = None  # set when target_return is reached

    #: The clock used for every timing (``time.perf_counter``).
    clock = staticmethod(time.perf_counter)

    def add_episodes(self, returns: np.ndarray) -> None:
        """Record the returns of episodes that just finished."""
        if len(returns):
            self.agent.num_episodes += len(returns)
            self.episode_returns.extend(returns.tolist())

    @property
    def train_seconds(self) -> float:
        """Seconds of training so far (evaluation and checkpoint time excluded)."""
        return time.perf_counter() - self.start - self.excluded_time

    def time_split(self) -> dict[str, float]:
        """Seconds in env / inference / learn and the rest, plus steps."""
        train_seconds = self.train_seconds
        env, inference = float(self.timing.env_time), float(self.timing.inference_time)
        return {
            "train_seconds": train_seconds,
            "env": env,
            "inference": inference,
            "learn": self.learn_time,
            "other": max(train_seconds - env - inference - self.learn_time, 0.0),
            "steps": self.agent.global_step,
        }

    def step(self, metrics: Callable[[], dict[str, float]]) -> bool:
        """Call after each collection; logs, evaluates and checkpoints when due. True: stop."""
        agent, config = self.agent, self.config
        step = agent.global_step
        done = step >= config.total_steps
        if step >= self.next_log or done:
            while self.next_log <= step:
                self.next_log += config.log_every_steps
            split = self.time_split()
            logged = dict(metrics())
            source_metrics = getattr(self.timing, "source_metrics", None)  # e.g. ray/restarts
            if source_metrics is not None:
                logged.update(source_metrics())
            logged.update({
                "charts/steps_per_second": (step - self.start_step) / max(split["train_seconds"], 1e-9),
                "time/env": split["env"], "time/inference": split["inference"], "time/learn": split["learn"], "time/other": split["other"],
            })
            returns = self.episode_returns
            if returns:
                logged["charts/episode_return"] = float(np.mean(returns[-20:]))
            self.context.logger.log(step, logged)
            self.context.progress.update(
                steps=step, episodes=agent.num_episodes, last_return=returns[-1] if returns else None,
                env_s=round(split["env"], 2), inference_s=round(split["inference"], 2), learn_s=round(split["learn"], 2),
            )
        stop = False
        if (self.next_eval is not None and step >= self.next_eval) or (self.next_checkpoint is not None and step >= self.next_checkpoint) or (done and self.next_eval is not None):
            excluded_start = time.perf_counter()
            train_seconds = self._paused_at = self.train_seconds
            if self.next_eval is not None and (step >= self.next_eval or done):
                while self.next_eval <= step:
                    self.next_eval += config.eval_every_steps
                stop = self.evaluate(train_seconds)
            if self.next_checkpoint is not None and step >= self.next_checkpoint:
                while self.next_checkpoint <= step:
                    self.next_checkpoint += config.checkpoint_every_steps
                self.checkpoint(f"step-{step}")
            self.excluded_time += time.perf_counter() - excluded_start
        return stop or self.hooks.stop_reason is not None or self.hooks.interrupt is not None

    def evaluate(self, train_seconds: float) -> bool:
        """Periodic evaluation on separate env copies; True when ``target_return`` is reached or a hook stops."""
        from daedalus.evaluation import evaluate

        config, agent = self.config, self.agent
        extra: dict[str, float] = {}
        if self.evaluator is not None:
            mean, std, returns, extra = self.evaluator(config.eval_episodes, config.eval_deterministic, self.eval_seed)
        else:
            result = evaluate(agent, self.env_factory, n_episodes=config.eval_episodes, deterministic=config.eval_deterministic, seed=self.eval_seed)
            mean, std, returns = float(result.mean_return), float(result.std_return), tuple(result.returns)
        train_seconds += self.time_offset
        entry = {"step": agent.global_step, "mean_return": mean, "std_return": std, "train_seconds": train_seconds}
        entry.update({key.removeprefix("eval/"): value for key, value in extra.items()})
        self.evaluations.append(entry)
        self.context.logger.log(agent.global_step, {"eval/mean_return": mean, "eval/std_return": std, **extra})
        if mean > self.best_return:
            self.best_return = mean
            self.checkpoint("best")
        if config.target_return is not None and mean >= config.target_return and self.stop_reason is None:
            self.stop_reason = f"target_return {config.target_return:g} reached (evaluation mean {mean:.2f})"
        if self.hooks:
            self.hooks.emit("on_eval", EvalEnd(agent.global_step, mean, std, returns, train_seconds))
        return self.stop_reason is not None or self.hooks.stop_reason is not None

    def checkpoint(self, name: str) -> None:
        """Write checkpoint ``name`` now (and tell the hooks)."""
        step = self.agent.global_step
        # What a resume needs besides the agent: the trailing returns the log continues from.
        self.context.extras["recent_returns"] = self.episode_returns[-20:]
        self.context.extras["train_seconds_now"] = self.time_offset + self._paused_at
        self.context.checkpoint(self.agent, name, step)
        if self.hooks:
            self.hooks.emit("on_checkpoint", CheckpointSaved(step, name))

    def rollout_end(self, num_transitions: int, episode_returns: np.ndarray, policy_version: int = 0) -> bool:
        """A collection finished: record its episodes and tell the hooks; True when a hook stops."""
        self.add_episodes(episode_returns)
        if not self.hooks:
            return False
        info = RolloutEnd(self.agent.global_step, self.agent.num_episodes, num_transitions, tuple(episode_returns.tolist()), policy_version)
        return self.hooks.emit("on_rollout_end", info)

    def update_end(self, num_updates: int, metrics: Callable[[], dict[str, float]]) -> bool:
        """An update finished: tell the hooks (metrics are only computed when someone listens)."""
        if not self.hooks:
            return False
        return self.hooks.emit("on_update", UpdateEnd(self.agent.global_step, num_updates, dict(metrics())))

    def finish(self) -> None:
        """Write ``artifacts["time_split"]`` and, when training stopped early, ``artifacts["stop_reason"]``."""
        self.context.extras["recent_returns"] = self.episode_returns[-20:]
        self.context.extras["train_seconds_now"] = self.time_offset + self.train_seconds
        self.context.progress.update(steps=self.agent.global_step, episodes=self.agent.num_episodes)
        self.artifacts["time_split"] = self.time_split()
        reason = self.stop_reason or self.hooks.stop_reason
        if reason is not None:
            self.artifacts["stop_reason"] = reason


def _next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` after ``step``."""
    return (step // every + 1) * every if every > 0 else step


# --------------------------------------------------------------------------- the replay loop of DQN, SAC and TD3


def train_replay(
    env_factory: Callable[[int | None], Any],
    agent: Any,
    config: Any,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None,
    context: TrainContext | None,
    algo: str,
    update: Callable[[Any, Any, Any], dict[str, torch.Tensor]],
    *,
    action_to_env: Callable[[np.ndarray], np.ndarray] | None = None,
    every_step: Callable[[int], None] | None = None,
    extra_metrics: Callable[[], dict[str, float]] | None = None,
    source: Any = None,
    evaluator: Callable[..., Any] | None = None,
) -> Any:
    """The replay loop of DQN, SAC and TD3: collect one step of every row, learn with ``update``
    every ``train_frequency_steps`` once ``learning_starts`` steps are collected, log, evaluate,
    checkpoint. Continues from ``agent.global_step``.

    ``agent`` needs ``buffer``, ``make_buffer``, ``explore``, ``global_step`` and ``num_episodes``.
    ``every_step(previous_global_step)`` runs after each env step, before learning (DQN's target
    network schedule); ``extra_metrics()`` adds numbers to each log row. ``context`` provides the
    vector-env settings, logger, progress display and checkpoint callback (without it: one sync env
    and checkpoints through ``save_callback``). Writes ``artifacts["evaluations"]`` and
    ``artifacts["time_split"]``. ``source`` (a step-level source or worker; default: the one the
    context describes) and ``evaluator`` (see :class:`TrainingSchedule`) let multi-agent runs
    use the same loop.
    """
    context = context or default_context(algo, env_factory, artifacts, save_callback)
    previous_threads = set_torch_threads(config.torch_threads)
    source = source if source is not None else make_source(context)
    if getattr(source, "rollout_level_only", False):  # Ray workers: whole rounds, not single steps
        try:
            return _train_replay_rounds(source, env_factory, agent, config, artifacts, context, update, action_to_env, every_step, extra_metrics, evaluator)
        finally:
            summary = getattr(source, "summary", None)
            if summary is not None:
                artifacts["rollout"] = summary()
            source.close()
            restore_torch_threads(previous_threads)
    try:
        if agent.buffer is None or agent.buffer.num_rows != source.batch_size:
            agent.buffer = agent.make_buffer(config.buffer_size, source.batch_size)
        buffer = agent.buffer
        collector = Collector(source, buffer, policy=agent.explore, action_to_env=action_to_env)
        schedule = TrainingSchedule(agent, config, context, env_factory, artifacts, collector, evaluator=evaluator)
        latest, current_metrics = _update_metrics(context, extra_metrics)

        collector.reset(seed=context.seed)
        rows = source.batch_size
        while agent.global_step < config.total_steps:
            # ---- collect: one policy forward for all rows, one env step, one buffer write
            batch = collector.step()
            stop = schedule.rollout_end(rows, batch.episode_returns, agent.num_updates)
            # ---- learn (SB3: every train_frequency_steps env steps, once past learning_starts)
            stop = _advance_and_learn(agent, buffer, config, rows, schedule, update, every_step, latest, current_metrics) or stop

            if schedule.step(current_metrics) or stop:
                break
        schedule.finish()
    finally:
        source.close()
        restore_torch_threads(previous_threads)
    return agent


class ExplorePolicy:
    """An off-policy agent's exploration (``agent.explore``) as a collection
    :class:`~daedalus.rollout.contract.Policy` that Ray workers can hold a copy of.

    The weights are the agent's acting networks (``agent.acting_modules``: DQN's Q-network, SAC's
    and TD3's actor) plus ``global_step``, which drives the warm-up and the exploration schedule.
    """

    def __init__(self, agent: Any, action_to_env: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.agent = agent
        self.action_to_env = action_to_env

    def act(self, obs: np.ndarray, state: Any = None, deterministic: bool = False) -> ActOutput:
        """``agent.explore(obs)``; env actions through ``action_to_env``."""
        actions = self.agent.explore(obs)
        return ActOutput(actions=actions, env_actions=None if self.action_to_env is None else self.action_to_env(actions))

    def get_weights(self) -> dict[str, np.ndarray]:
        """The acting networks' parameters and the step counter."""
        weights = {
            f"{name}/{key}": value.detach().cpu().numpy()
            for name in self.agent.acting_modules
            for key, value in getattr(self.agent, name).state_dict().items()
        }
        weights["global_step"] = np.asarray(self.agent.global_step, dtype=np.int64)
        return weights

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load what :meth:`get_weights` gave."""
        for name in self.agent.acting_modules:
            prefix = f"{name}/"
            getattr(self.agent, name).load_state_dict({k[len(prefix):]: torch.as_tensor(v) for k, v in weights.items() if k.startswith(prefix)})
        self.agent.global_step = int(weights["global_step"])

    def copy_factory(self, seed: int | None = None) -> Callable[[int], ExplorePolicy]:
        """``recipe(worker_index)``: a CPU copy of the agent (exploration seeded per worker)."""
        agent = self.agent
        return partial(_explore_copy, type(agent), agent.observation_space, agent.action_space, agent.config, seed, self.action_to_env is not None)


def _explore_copy(agent_class: Any, observation_space: Any, action_space: Any, config: Any, seed: int | None, rescale: bool, worker: int = 0) -> ExplorePolicy:
    agent = agent_class(observation_space, action_space, config, "cpu", None if seed is None else seed + 7919 * (worker + 1))
    return ExplorePolicy(agent, agent.to_env if rescale else None)


def _train_replay_rounds(
    source: Any,
    env_factory: Callable[[int | None], Any],
    agent: Any,
    config: Any,
    artifacts: dict[str, Any],
    context: TrainContext,
    update: Callable[[Any, Any, Any], dict[str, torch.Tensor]],
    action_to_env: Callable[[np.ndarray], np.ndarray] | None,
    every_step: Callable[[int], None] | None,
    extra_metrics: Callable[[], dict[str, float]] | None,
    evaluator: Callable[..., Any] | None,
) -> Any:
    """:func:`train_replay` on a rollout-level source (Ray workers feeding the replay buffer).

    Each round, every worker collects ``rollout.steps_per_round`` steps (default 32, at least
    ``train_frequency_steps / rows``) of each of its copies with the exploration policy as of the
    last round (one round behind the learner at most); the steps are then written to the buffer and learned from one by one exactly as the
    local loop does (warm-up, ``train_frequency_steps``, ``every_step``, logging, evaluation).
    """
    rows = source.batch_size
    if agent.buffer is None or agent.buffer.num_rows != rows:
        agent.buffer = agent.make_buffer(config.buffer_size, rows)
    buffer = agent.buffer
    policies = {DEFAULT_GROUP: ExplorePolicy(agent, action_to_env)}
    source.reset(seed=context.seed)  # before the training clock starts: starts the workers
    schedule = TrainingSchedule(agent, config, context, env_factory, artifacts, source, evaluator=evaluator)
    latest, current_metrics = _update_metrics(context, extra_metrics)

    every = config.train_frequency_steps
    options = getattr(source, "options", None)
    steps_per_round = max(getattr(options, "steps_per_round", None) or 32, -(-every // rows))
    while agent.global_step < config.total_steps:
        trajectory = source.sample(policies, steps_per_round, agent.num_updates, every_worker=True)[DEFAULT_GROUP]
        stop = schedule.rollout_end(trajectory.num_transitions, trajectory.episode_returns, trajectory.policy_version)
        for t in range(trajectory.num_steps):
            buffer.add(
                trajectory.obs[t], trajectory.actions[t], trajectory.rewards[t], trajectory.terminated[t],
                trajectory.truncated[t], trajectory.next_obs[t], trajectory.valid[t],
            )
            stop = _advance_and_learn(agent, buffer, config, rows, schedule, update, every_step, latest, current_metrics) or stop
        if schedule.step(current_metrics) or stop:
            break
    schedule.finish()
    return agent


def _update_metrics(
    context: TrainContext, extra_metrics: Callable[[], dict[str, float]] | None,
) -> tuple[dict[str, Any], Callable[[], dict[str, float]]]:
    """The dict the replay loops keep the last update's metrics in (tensors: no sync per step) and
    the function that logs them. A resumed run starts with the values its checkpoint saw, so that
    its log rows read as the uninterrupted run's."""
    latest: dict[str, Any] = dict(context.extras.get("last_update_metrics") or {})
    context.extras["last_update_metrics"] = latest

    def current_metrics() -> dict[str, float]:
        logged = {key: float(value) for key, value in latest.items()}
        if extra_metrics is not None:
            logged.update(extra_metrics())
        return logged

    return latest, current_metrics


def _advance_and_learn(
    agent: Any,
    buffer: Any,
    config: Any,
    rows: int,
    schedule: TrainingSchedule,
    update: Callable[[Any, Any, Any], dict[str, torch.Tensor]],
    every_step: Callable[[int], None] | None,
    latest: dict[str, Any],
    current_metrics: Callable[[], dict[str, float]],
) -> bool:
    """One env step of every row was written to the buffer: count it, run ``every_step``, and learn
    when due (every ``train_frequency_steps`` once past ``learning_starts``). True: a hook asked to stop.
    Shared by the local replay loop and the Ray rounds loop."""
    previous, agent.global_step = agent.global_step, agent.global_step + rows
    if every_step is not None:
        every_step(previous)
    every = config.train_frequency_steps
    due = agent.global_step // every > previous // every
    if due and agent.global_step > config.learning_starts and buffer.num_sampleable_steps > 0:
        start = schedule.clock()
        latest.update(update(agent, buffer, config))
        schedule.learn_time += schedule.clock() - start
        return schedule.update_end(agent.num_updates, current_metrics)
    return False
