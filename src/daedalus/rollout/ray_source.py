"""A rollout source on Ray actors: how collection goes past one process and one machine.

:class:`RaySource` honours the collection contract (:mod:`daedalus.rollout.contract`) with
``num_workers`` Ray actors, each owning ``envs_per_worker`` env copies (a local source of its
own) and a copy of every policy. This is the only module of the package that imports Ray, and
only when a source is built.

One round of :meth:`RaySource.sample`:

1. the current weights are put in the object store once (``ray.put`` of plain arrays, only when
   the policy version changed) and every **idle** worker is asked for ``num_steps`` steps;
2. the driver waits until at least ``min_returns`` workers answered or ``timeout_s`` passed. A
   wait that ends with nothing ready is not an error: the driver keeps waiting for the first
   answer (ReAllY's ``SampleManager`` raised ``IndexError`` there);
3. every answer carries the policy version it was collected with. A worker still busy when the
   round ends (a straggler) keeps running; its answer is used in a later round if it is at most
   ``max_staleness`` versions old, otherwise dropped and counted;
4. a worker whose process died or whose env raised is replaced by a fresh actor with fresh env
   copies and the current weights, and the round goes on (ReAllY stopped collecting). After
   ``max_failures`` failures in a row without one good answer, :class:`RolloutWorkersFailed`
   ends the run with the last error.

The answers of one round are laid side by side on the row axis (worker 0's rows first), so a
round's trajectory has ``num_steps`` steps of ``answered workers x envs_per_worker`` rows;
learners count transitions from the trajectory, never from :attr:`batch_size`. Which worker
answers first depends on timing, so runs on Ray are not bit-exact (``min_returns`` = every
worker and no timeout, the default, is synchronous and close to it). Evaluation
(:meth:`episodes`) plays on env copies in the driver's process.

Observation normalization: workers normalize with the statistics of the weights they were sent
and send back the moments of the raw observations they saw; the driver folds those into its
statistics (``obs_stats``), which the next weights carry back.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daedalus.errors import DaedalusError, MissingDependencyError
from daedalus.rollout.contract import (
    DEFAULT_GROUP,
    EpisodeStats,
    FrameCallback,
    Policy,
    StepBatch,
    Trajectory,
)
from daedalus.rollout.source import EpisodeEnvs

__all__ = ["RayOptions", "RaySource", "RolloutWorkersFailed", "connect", "import_ray", "ray_source", "worker_source"]

#: ``transform(obs, update) -> obs``: what a worker's source applies to observations leaving its envs.
Transform = Callable[[np.ndarray, bool], np.ndarray]


#: Seconds a new worker may take to be placed and reset its envs.
START_TIMEOUT_S = 120.0


class RolloutWorkersFailed(DaedalusError):
    """Ray rollout workers kept failing: the run stops (its saved checkpoints stay as they were)."""


@dataclass(frozen=True)
class RayOptions:
    """How a profile's rollouts run on Ray (the profile's ``rollout:`` section with ``backend: ray``)."""

    #: Ray actors stepping envs.
    num_workers: int = 2
    #: Env copies per worker; ``None``: the profile's ``num_envs`` split over the workers.
    envs_per_worker: int | None = None
    #: Answers to wait for in a round (``None``: every worker).
    min_returns: int | None = None
    #: Seconds to wait for ``min_returns`` answers before taking what is there (``None``: no limit).
    timeout_s: float | None = None
    #: Join this cluster (``HOST:PORT`` or ``auto``); ``None``: ``RAY_ADDRESS``, else a local Ray.
    address: str | None = None
    #: Oldest data a round still uses, in policy versions (updates) behind the current one.
    max_staleness: int = 1
    #: Failures in a row (without a good answer in between) before the run gives up.
    max_failures: int = 3
    #: CPUs Ray reserves for each worker (fractions allowed).
    cpus_per_worker: float = 1.0
    #: DQN/SAC/TD3: steps of each env copy per round (the exploration policy lags the learner by
    #: at most this many steps); ``None``: 32, or ``train_frequency_steps`` when that is more.
    steps_per_round: int | None = None

    def workers_envs(self, num_envs: int) -> int:
        """Env copies per worker for a profile with ``num_envs`` copies."""
        if self.envs_per_worker is not None:
            return self.envs_per_worker
        return max(1, num_envs // self.num_workers)


# --------------------------------------------------------------------------- connecting


def import_ray() -> Any:
    """``import ray``, or the one-line install hint."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "Collecting on Ray (rollout.backend: ray)") from None
    return ray


@dataclass
class _Connection:
    started_here: bool


def connect(address: str | None = None, num_cpus: int | None = None) -> _Connection:
    """Join Ray: an existing connection of this process as it is, the cluster at ``address`` (or
    ``RAY_ADDRESS``), else a local Ray started here (no dashboard) that :func:`disconnect` stops."""
    ray = import_ray()
    if ray.is_initialized():
        return _Connection(started_here=False)
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise DaedalusError(
                f"could not join the Ray cluster at {address!r}: {error}. Start it with 'ray start --head --port=6379' "
                "on the head node (see docs/ray.md), or leave rollout.address / --ray-address / RAY_ADDRESS unset to run a local Ray."
            ) from None
    else:
        # address="local": a new Ray for this process, even when `ray start` left a cluster running here
        # (plain ray.init() would join that one).
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, object_store_memory=256 * 2**20, **quiet)
    return _Connection(started_here=not address)


def disconnect(connection: _Connection) -> None:
    """Stop the local Ray that :func:`connect` started (a joined cluster keeps running)."""
    if connection.started_here:
        ray = import_ray()
        ray.shutdown()


# --------------------------------------------------------------------------- the worker (a Ray actor)


class _Moments:
    """Count, sum and sum of squares of the raw (flat) observations a worker acted on."""

    def __init__(self) -> None:
        self.count = 0
        self.total: np.ndarray | None = None
        self.squares: np.ndarray | None = None

    def add(self, obs: np.ndarray) -> None:
        flat = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
        if self.total is None or self.squares is None:
            self.total, self.squares = flat.sum(0), (flat * flat).sum(0)
        else:
            self.total += flat.sum(0)
            self.squares += (flat * flat).sum(0)
        self.count += len(flat)

    def take(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        if self.count == 0 or self.total is None or self.squares is None:
            return None
        mean = self.total / self.count
        var = np.maximum(self.squares / self.count - mean * mean, 0.0)
        out = (self.count, mean, var)
        self.count, self.total, self.squares = 0, None, None
        return out


class RolloutActor:
    """What one Ray worker runs: its env copies (a local source) and a copy of every policy.

    ``build_source(transform)`` builds the worker's local source (a
    :class:`~daedalus.rollout.source.LocalSource`); ``transform`` is applied to observations
    leaving the envs: the policy copy's ``prepare`` once the policies are set (see
    :meth:`set_policies`), and the raw-observation moments are counted when ``track_moments``.
    """

    def __init__(self, build_source: Callable[[Callable[[str | None], Transform]], Any], index: int, track_moments: bool = False) -> None:
        _one_torch_thread()
        self.index = index
        self.policies: dict[str, Policy] = {}
        self.version = -1
        self.seed: int | None = None
        self.moments = _Moments() if track_moments else None
        #: Group -> its policy copy's ``prepare`` (``None``: the only policy's, for single-agent sources).
        self._prepares: dict[str | None, Callable[[np.ndarray], np.ndarray] | None] = {}
        self.source = build_source(self._transform_for)

    def _transform_for(self, group: str | None) -> Transform:
        """What the source applies to ``group``'s observations (``None``: a single-agent source's)."""

        def transform(obs: np.ndarray, update: bool) -> np.ndarray:
            if update and self.moments is not None:
                self.moments.add(obs)
            prepare = self._prepares.get(group)
            return obs if prepare is None else prepare(obs)

        return transform

    def pid(self) -> int:
        """This worker's process id (tests kill it)."""
        return os.getpid()

    def reset(self, seed: int | None) -> np.ndarray:
        """Reset the worker's env copies (copy ``i`` with ``seed + i``)."""
        self.seed = seed
        return self.source.reset(seed=seed)

    def set_policies(self, factories: Mapping[str, Callable[[int], Policy]]) -> None:
        """Build the policy copies; when they prepare observations, reset again so that the first
        observations are prepared too (the same seed gives the same observations)."""
        self.policies = {group: factory(self.index) for group, factory in factories.items()}
        _one_torch_thread()  # the copies may have brought torch in
        self._prepares = {group: getattr(policy, "prepare", None) for group, policy in self.policies.items()}
        self._prepares[None] = self._prepares[next(iter(self.policies))]
        if any(prepare is not None for prepare in self._prepares.values()):
            if self.moments is not None:
                self.moments.take()
            self.source.reset(seed=self.seed)

    def sample(self, weights: Mapping[str, Mapping[str, np.ndarray]] | None, version: int, num_steps: int) -> dict[str, Any]:
        """``num_steps`` steps with the policies at ``version`` (``weights``: None when already loaded)."""
        if weights is not None:
            for group, policy in self.policies.items():
                policy.set_weights(weights[group])
            self.version = version
        trajectories = self.source.sample(self.policies, num_steps, policy_version=self.version)
        take_team_returns = getattr(self.source, "take_team_returns", None)  # multi-agent sources
        return {
            "trajectories": trajectories,
            "team_returns": None if take_team_returns is None else take_team_returns(),
            "num_envs": int(self.source.num_envs),
            "version": self.version,
            "env_time": float(self.source.env_time),
            "inference_time": float(self.source.inference_time),
            "moments": None if self.moments is None else self.moments.take(),
            "index": self.index,
        }

    def close(self) -> None:
        """Close the env copies."""
        self.source.close()


def _one_torch_thread() -> None:
    """One torch thread per worker (several workers share the cores), if torch is loaded at all:
    a worker whose envs and policies are NumPy never pays torch's import (~1 s)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


# --------------------------------------------------------------------------- the driver side


@dataclass
class _Worker:
    index: int
    actor: Any
    seed: int | None
    restarts: int = 0
    #: The policy version this worker holds (-1: none yet).
    version: int = -1
    #: Seconds of env / inference time reported by earlier actors of this slot (before restarts).
    env_time_before: float = 0.0
    inference_time_before: float = 0.0
    env_time: float = 0.0
    inference_time: float = 0.0


@dataclass
class RayStats:
    """What the source counts; logged as ``ray/*`` metrics and saved in ``run.json``."""

    restarts: int = 0
    dropped_stale: int = 0
    empty_waits: int = 0
    rounds: int = 0
    answers: int = 0
    failures: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """The counters as metric columns."""
        return {
            "ray/restarts": float(self.restarts),
            "ray/dropped_stale": float(self.dropped_stale),
            "ray/empty_waits": float(self.empty_waits),
            "ray/answers_per_round": self.answers / self.rounds if self.rounds else 0.0,
        }


class RaySource:
    """A :class:`~daedalus.rollout.contract.RolloutSource` on ``options.num_workers`` Ray actors
    (see the module docstring for a round's rules).

    ``build_source(seed_offset)`` returns a picklable ``build(transform) -> local source`` for
    one worker (its ``envs_per_worker`` copies); ``make_env(seed)`` builds the driver's
    evaluation copies. ``obs_transform`` is the driver's preprocessing, used by
    :meth:`episodes` (with ``update=False``); ``obs_stats`` (a
    :class:`~daedalus.nn.normalization.RunningMeanStd`) receives the workers' observation
    moments.
    """

    def __init__(
        self,
        build_source: Callable[[int], Callable[[Any], Any]],
        envs_per_worker: int,
        options: RayOptions,
        make_env: Callable[[int | None], Any] | None = None,
        seed: int | None = None,
        obs_transform: Callable[[np.ndarray, bool], np.ndarray] | None = None,
        obs_stats: Any = None,
        spaces: tuple[Any, Any] | None = None,
    ) -> None:
        self.ray = import_ray()
        self.options = options
        self.build_source = build_source
        self.make_env = make_env
        self.obs_transform = obs_transform
        self.obs_stats = obs_stats
        self.seed = seed
        self.envs_per_worker = envs_per_worker
        self.num_envs = options.num_workers * envs_per_worker
        self.num_agents = 1
        self.batch_size = self.num_envs
        #: Whole rollouts only: loops that step one env step at a time take another path.
        self.rollout_level_only = True
        self.stats = RayStats()
        self._connection = connect(options.address)
        self._workers: list[_Worker] = []
        self._pending: dict[Any, _Worker] = {}  # object ref of a sample() call -> its worker
        self._factories: Any = None  # object ref of {group: policy copy recipe}, once sent
        self._sent_policies: dict[str, Policy] = {}
        self._weights_ref: Any = None
        self._weights_version = -1
        self._consecutive_failures = 0
        self._episode_envs = EpisodeEnvs(make_env)
        self._team_returns: list[float] = []
        self._group_returns: dict[str, list[float]] = {}
        self.last_num_envs = self.num_envs
        self._reset_seed: int | None = seed
        if spaces is None and make_env is not None:
            probe = make_env(None)
            spaces = (probe.observation_space, probe.action_space)
            probe.close()
        self.observation_space: Any = spaces[0] if spaces is not None else None
        self.action_space: Any = spaces[1] if spaces is not None else None

    # ------------------------------------------------------------------ timing

    @property
    def env_time(self) -> float:
        """Seconds the workers spent inside ``env.step`` / ``env.reset`` (summed over workers)."""
        return sum(w.env_time_before + w.env_time for w in self._workers)

    @property
    def inference_time(self) -> float:
        """Seconds the workers spent inside ``policy.act`` (summed over workers)."""
        return sum(w.inference_time_before + w.inference_time for w in self._workers)

    # ------------------------------------------------------------------ workers

    def _worker_seed(self, index: int, restarts: int) -> int | None:
        if self._reset_seed is None:
            return None
        # A restarted worker's fresh copies get seeds no other copy of this run had.
        return self._reset_seed + index * self.envs_per_worker + restarts * 1_000_003

    def _start_actor(self, index: int) -> Any:
        options = {"num_cpus": self.options.cpus_per_worker, "max_restarts": 0, "max_task_retries": 0}
        actor_class = self.ray.remote(**options)(RolloutActor)
        return actor_class.remote(self.build_source(index * self.envs_per_worker), index, self.obs_stats is not None)

    def _start_workers(self) -> np.ndarray:
        needed = self.options.num_workers * self.options.cpus_per_worker
        total = float(self.ray.cluster_resources().get("CPU", 0.0))
        if needed > total:
            raise DaedalusError(
                f"rollout: {self.options.num_workers} Ray workers x {self.options.cpus_per_worker:g} CPU need {needed:g} CPUs; the "
                f"cluster has {total:g}. Lower rollout.num_workers or rollout.cpus_per_worker (fractions are allowed), or add nodes."
            )
        for index in range(self.options.num_workers):
            self._workers.append(_Worker(index, self._start_actor(index), self._worker_seed(index, 0)))
        # Reset every worker's envs (and surface a broken env at once, with its message).
        return self._gather_resets()

    def _gather_resets(self) -> np.ndarray:
        refs = [w.actor.reset.remote(w.seed) for w in self._workers]
        observations = []
        for worker, ref in zip(self._workers, refs, strict=True):
            try:
                observations.append(self.ray.get(ref, timeout=START_TIMEOUT_S))
            except self.ray.exceptions.GetTimeoutError:
                raise RolloutWorkersFailed(
                    f"Ray rollout worker {worker.index} did not start within {START_TIMEOUT_S:g} s: the cluster has no free "
                    f"{self.options.cpus_per_worker:g} CPU for it (other work holds them; 'ray status' shows what is used). "
                    "Lower rollout.cpus_per_worker or free the cluster."
                ) from None
            except Exception as error:  # noqa: BLE001 - reported whole below
                raise RolloutWorkersFailed(f"Ray rollout worker {worker.index} could not build or reset its envs: {_short(error)}") from None
        if isinstance(observations[0], dict):  # multi-agent: per group
            return {group: np.concatenate([obs[group] for obs in observations]) for group in observations[0]}  # type: ignore[return-value]
        return np.concatenate(observations)

    def _send_policies(self, policies: Mapping[str, Policy]) -> None:
        factories: dict[str, Any] = {}
        for group, policy in policies.items():
            copy_factory = getattr(policy, "copy_factory", None)
            # copy_factory(seed) gives recipe(worker_index) -> a CPU copy. Without one, the policy object
            # itself travels (pickled by Ray) and is brought up to date with set_weights like any copy.
            factories[group] = copy_factory(self.seed) if copy_factory is not None else _Same(policy)
        try:
            self._factories = self.ray.put(factories)
        except Exception as error:  # noqa: BLE001 - an unpicklable policy
            raise DaedalusError(
                f"the policies cannot be sent to Ray workers: {_short(error)}. A policy for remote workers implements "
                "copy_factory(seed) (a picklable recipe of a CPU copy) or can be pickled whole."
            ) from None
        self._sent_policies = dict(policies)
        self._weights_ref = None  # the new copies need weights
        for worker in self._workers:
            worker.actor.set_policies.remote(self._factories)
            worker.version = -1

    def _restart(self, worker: _Worker, error: BaseException) -> None:
        self._consecutive_failures += 1
        self.stats.failures.append(f"worker {worker.index}: {_short(error)}")
        del self.stats.failures[:-10]
        if self._consecutive_failures > self.options.max_failures:
            raise RolloutWorkersFailed(
                f"Ray rollout workers failed {self._consecutive_failures} times in a row (rollout.max_failures: "
                f"{self.options.max_failures}); the last: worker {worker.index}: {_short(error)}. The run stops here; its "
                "checkpoints are intact ('daedalus resume' continues from the last one once the cause is fixed)."
            )
        self.stats.restarts += 1
        with contextlib.suppress(Exception):
            self.ray.kill(worker.actor, no_restart=True)
        worker.env_time_before += worker.env_time
        worker.inference_time_before += worker.inference_time
        worker.env_time = worker.inference_time = 0.0
        worker.restarts += 1
        worker.version = -1
        worker.seed = self._worker_seed(worker.index, worker.restarts)
        worker.actor = self._start_actor(worker.index)
        # Calls to one actor run in order: these two come before its next sample().
        worker.actor.reset.remote(worker.seed)
        if self._factories is not None:
            worker.actor.set_policies.remote(self._factories)

    # ------------------------------------------------------------------ step level

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every worker's copies (copy ``i`` of worker ``w`` with ``seed + w * envs_per_worker + i``);
        rollouts still running are discarded."""
        self._reset_seed = seed
        self._pending.clear()
        if not self._workers:
            return self._start_workers()
        for worker in self._workers:
            worker.seed = self._worker_seed(worker.index, worker.restarts)
        return self._gather_resets()

    def step(self, env_actions: np.ndarray) -> StepBatch:
        """Not available: a Ray source crosses the process boundary once per rollout, not per step."""
        raise DaedalusError(
            "rollout.backend: ray collects whole rollouts on remote workers; step-at-a-time training (stepwise agents, "
            "the replay loops of DQN, SAC and TD3) needs rollout.backend: local or subprocess."
        )

    # ------------------------------------------------------------------ rollout level

    def sample(
        self, policies: Mapping[str, Policy], num_steps: int, policy_version: int = 0, *, every_worker: bool = False,
    ) -> dict[str, Trajectory]:
        """One round (see the module docstring): at least one worker's ``num_steps`` steps per group.

        ``every_worker``: one answer from every worker, whatever ``min_returns`` and ``timeout_s``
        say (a failed worker is restarted and asked again), so that the rows are always
        ``batch_size``: what a replay buffer with one row per env copy needs.
        """
        if num_steps < 1:
            raise ValueError(f"sample(): num_steps must be >= 1, got {num_steps}")
        ray = self.ray
        if not self._workers:
            self._start_workers()
        if self._factories is None or any(policies.get(g) is not p for g, p in self._sent_policies.items()) or len(policies) != len(self._sent_policies):
            self._send_policies(policies)  # the first call, or other policy objects than last time
        if self._weights_version != policy_version or self._weights_ref is None:
            self._weights_ref = ray.put({group: policy.get_weights() for group, policy in policies.items()})
            self._weights_version = policy_version
        self._launch(num_steps)
        wanted = min(self.options.min_returns or self.options.num_workers, self.options.num_workers)
        answers: list[dict[str, Any]] = []
        answered: set[int] = set()
        first_wait = True
        while not answers or (every_worker and len(answered) < len(self._workers)):
            if not self._pending:
                self._launch(num_steps, skip=answered)
            pending = list(self._pending)
            if every_worker:
                ready, _ = ray.wait(pending, num_returns=len(pending))
            elif first_wait:  # min_returns answers, or whatever is there at the timeout
                ready, _ = ray.wait(pending, num_returns=min(wanted, len(pending)), timeout=self.options.timeout_s)
            else:  # after an empty-handed wait or failed answers: the first answer that comes
                ready, _ = ray.wait(pending, num_returns=1)
            first_wait = False
            if not ready:
                # Timed out with nothing ready: not an error (ReAllY raised IndexError); wait for the first answer.
                self.stats.empty_waits += 1
                continue
            if len(ready) < len(pending):  # take whatever else is already there
                more, _ = ray.wait([r for r in pending if r not in ready], num_returns=len(pending) - len(ready), timeout=0)
                ready = [*ready, *more]
            for ref in ready:
                worker = self._pending.pop(ref)
                try:
                    answer = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - a dead worker or an env that raised: restart
                    self._restart(worker, error)
                    continue
                self._consecutive_failures = 0
                worker.env_time, worker.inference_time = answer["env_time"], answer["inference_time"]
                if policy_version - int(answer["version"]) > self.options.max_staleness:
                    self.stats.dropped_stale += 1
                    continue
                answers.append(answer)
                answered.add(worker.index)
            if not answers or (every_worker and len(answered) < len(self._workers)):
                self._launch(num_steps, skip=answered)  # restarted or stale workers collect again with the current weights
        self.stats.rounds += 1
        self.stats.answers += len(answers)
        answers.sort(key=lambda a: int(a["index"]))
        self._fold_moments(answers)
        #: Env copies in the last round's answers (env steps of a round: ``num_steps`` times this).
        self.last_num_envs = sum(int(a["num_envs"]) for a in answers)
        for answer in answers:
            if answer["team_returns"] is not None:
                self._team_returns.extend(np.asarray(answer["team_returns"]).tolist())
            for group, trajectory in answer["trajectories"].items():
                kept = self._group_returns.setdefault(group, [])
                kept.extend(trajectory.episode_returns.tolist())
                del kept[:-20]
        return _merge([a["trajectories"] for a in answers], min(int(a["version"]) for a in answers))

    def _launch(self, num_steps: int, skip: set[int] | frozenset[int] = frozenset()) -> None:
        busy = {w.index for w in self._pending.values()} | skip
        for worker in self._workers:
            if worker.index in busy:
                continue
            weights = None if worker.version == self._weights_version else self._weights_ref
            ref = worker.actor.sample.remote(weights, self._weights_version, num_steps)
            worker.version = self._weights_version
            self._pending[ref] = worker

    def _fold_moments(self, answers: list[dict[str, Any]]) -> None:
        if self.obs_stats is None:
            return
        for answer in answers:
            moments = answer.get("moments")
            if moments is not None:
                count, mean, var = moments
                self.obs_stats.update_moments(mean.reshape(self.obs_stats.mean.shape), var.reshape(self.obs_stats.var.shape), count)

    def take_team_returns(self) -> np.ndarray:
        """Multi-agent: team returns of the copy episodes finished since the last call (every worker's)."""
        out = np.asarray(self._team_returns, dtype=np.float64)
        self._team_returns.clear()
        return out

    def agent_metrics(self) -> dict[str, float]:
        """Multi-agent: ``charts/<group>/episode_return`` over each group's last 20 agent-episodes."""
        return {f"charts/{group}/episode_return": float(np.mean(kept)) for group, kept in self._group_returns.items() if kept}

    def source_metrics(self) -> dict[str, float]:
        """``ray/*`` counters for the metric log."""
        return self.stats.metrics()

    def summary(self) -> dict[str, Any]:
        """What the run records of its collection (``artifacts["rollout"]``, ``run.json``)."""
        return {
            "backend": "ray", "num_workers": self.options.num_workers, "envs_per_worker": self.envs_per_worker,
            "restarts": self.stats.restarts, "dropped_stale": self.stats.dropped_stale, "empty_waits": self.stats.empty_waits,
            "rounds": self.stats.rounds, "failures": list(self.stats.failures),
        }

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
        """Play exactly ``n`` episodes on env copies in this (the driver's) process."""
        policy = policies[DEFAULT_GROUP] if DEFAULT_GROUP in policies else next(iter(policies.values()))
        transform = self.obs_transform
        return self._episode_envs.play(
            "RaySource", policy, n, deterministic, seed, max_steps, on_frame, num_envs,
            obs_transform=None if transform is None else (lambda obs: transform(obs, False)),
        )

    def worker_pids(self) -> list[int]:
        """The process id of every worker (for tests and diagnostics)."""
        return [int(pid) for pid in self.ray.get([w.actor.pid.remote() for w in self._workers])]

    def close(self) -> None:
        """Stop the workers (and the local Ray this source started)."""
        actors = [worker.actor for worker in self._workers]
        for actor in actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        if not self._connection.started_here:
            _await_exit(self.ray, actors)
        self._workers.clear()
        self._pending.clear()
        self._episode_envs.close()
        disconnect(self._connection)


def _await_exit(ray: Any, actors: list[Any], timeout_s: float = 10.0) -> None:
    """Wait until killed actors are gone, so their CPUs are free for what runs next on the cluster.

    ``ray.kill`` only asks for the kill: a call that reaches the actor first is still answered.
    Gives up quietly after ``timeout_s`` (the kill stands; Ray frees the CPUs when it lands).
    """
    deadline = time.monotonic() + timeout_s
    for actor in actors:
        while (left := deadline - time.monotonic()) > 0:
            try:
                ray.get(actor.pid.remote(), timeout=left)
            except ray.exceptions.RayActorError:
                break
            except Exception:  # noqa: BLE001 - a timeout or a cluster going away: nothing left to wait for
                return
            time.sleep(0.05)


class _Same:
    """A picklable "recipe" that is the policy itself (unpickled in the worker: a copy)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self, worker: int) -> Policy:
        return self.policy


def _merge(parts: list[dict[str, Trajectory]], version: int) -> dict[str, Trajectory]:
    """Lay the workers' trajectories side by side on the row axis, group by group.

    Always into new arrays: what Ray hands back lives in its object store, read-only.
    """
    merged: dict[str, Trajectory] = {}
    for group in parts[0]:
        pieces = [part[group] for part in parts]

        def rows(name: str, pieces: list[Trajectory] = pieces) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in pieces], axis=1)

        merged[group] = Trajectory(
            obs=rows("obs"), actions=rows("actions"), rewards=rows("rewards"), terminated=rows("terminated"),
            truncated=rows("truncated"), valid=rows("valid"), next_obs=rows("next_obs"),
            last_obs=np.concatenate([p.last_obs for p in pieces], axis=0),
            extras={key: np.concatenate([p.extras[key] for p in pieces], axis=1) for key in pieces[0].extras},
            group=group, policy_version=version, **_episodes_in_time_order(pieces),
        )
    return merged


def _episodes_in_time_order(pieces: list[Trajectory]) -> dict[str, np.ndarray]:
    """The pieces' finished episodes ordered as one source would list them: by step, then row."""
    returns = np.concatenate([p.episode_returns for p in pieces])
    lengths = np.concatenate([p.episode_lengths for p in pieces])
    keys, offset = [], 0
    for piece in pieces:
        steps, rows = np.nonzero(piece.terminated | piece.truncated)  # row-major: by step, then row
        if len(steps) != len(piece.episode_returns):
            return {"episode_returns": returns, "episode_lengths": lengths}  # not one end per episode: keep worker order
        keys.append(steps * 1_000_000 + rows + offset)
        offset += piece.num_rows
    order = np.argsort(np.concatenate(keys), kind="stable")
    return {"episode_returns": returns[order], "episode_lengths": lengths[order]}


def _short(error: BaseException) -> str:
    """The gist of a Ray error: the original exception's last line, not Ray's whole traceback."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    text = str(error).strip().splitlines()
    last = text[-1] if text else ""
    return f"{type(error).__name__}: {last}" if last else type(error).__name__


# --------------------------------------------------------------------------- building one from a run


def worker_source(
    env_recipe: Callable[[], Callable[[int | None], Any]],
    num_envs: int,
    env_id: str,
    env_args: dict[str, Any],
    vectorization: str,
    transform_for: Callable[[str | None], Transform],
) -> Any:
    """A worker's local source: ``num_envs`` copies of ``env_recipe()`` (built inside the worker)."""
    from daedalus.envs.vector import make_vec_env
    from daedalus.rollout.source import LocalSource
    from daedalus.rollout.worker import SerialWorker

    make_env = env_recipe()
    return LocalSource(SerialWorker(make_vec_env(make_env, num_envs, env_id, env_args, vectorization, None)), make_env, transform_for(None))


def multi_agent_worker_source(
    env_recipe: Callable[[], Callable[[int | None], Any]],
    num_envs: int,
    groups: dict[str, list[str]],
    one_hot: list[str],
    critics: dict[str, str] | None,
    transform_for: Callable[[str | None], Transform],
) -> Any:
    """A worker's multi-agent source: ``num_envs`` PettingZoo copies, agents in ``groups``."""
    from daedalus.envs.pettingzoo import NamedMultiAgentVecEnv
    from daedalus.rollout.multiagent import MultiAgentSource, critic_groups

    centralized, state = critic_groups(critics)
    envs = NamedMultiAgentVecEnv(env_recipe(), num_envs, groups, seed=None, one_hot_agent_id=one_hot, centralized_critic=centralized, state_critic=state)
    return MultiAgentSource(envs, {group: transform_for(group) for group in groups})


def ray_multi_agent_source(context: Any, groups: Mapping[str, list[str]], one_hot: Any, critics: Mapping[str, str] | None) -> RaySource:
    """The Ray source of a multi-agent run: every worker owns ``envs_per_worker`` PettingZoo copies."""
    from functools import partial

    options: RayOptions = context.ray or RayOptions()
    if context.env_recipe is None:
        raise DaedalusError("rollout.backend: ray needs a run (daedalus train or daedalus.train()): remote workers rebuild the envs from the profile.")
    envs_per_worker = options.workers_envs(context.num_envs)
    build_args = (context.env_recipe, envs_per_worker, {k: list(v) for k, v in groups.items()}, list(one_hot), dict(critics) if critics else None)

    def build(first_copy: int) -> Callable[[Any], Any]:
        return partial(multi_agent_worker_source, *build_args)

    return RaySource(build, envs_per_worker, options, None, context.seed, spaces=(None, None))


def ray_source(context: Any, obs_transform: Callable[[np.ndarray, bool], np.ndarray] | None = None, obs_stats: Any = None) -> RaySource:
    """The Ray source a run's context describes (``rollout: {backend: ray, ...}``)."""
    from functools import partial

    options: RayOptions = context.ray or RayOptions()
    if context.env_recipe is None:
        raise DaedalusError("rollout.backend: ray needs a run (daedalus train or daedalus.train()): remote workers rebuild the envs from the profile.")
    envs_per_worker = options.workers_envs(context.num_envs)

    def build(first_copy: int) -> Callable[[Any], Any]:
        return partial(worker_source, context.env_recipe, envs_per_worker, context.env_id, dict(context.env_args), context.vectorization)

    return RaySource(build, envs_per_worker, options, context.make_env, context.seed, obs_transform, obs_stats)
