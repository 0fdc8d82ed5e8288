"""What the CLI and Python users call: validate, train, batch, load runs, describe agents.

Each CLI command is one call into this module.
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.config import (
    Profile,
    ProfileConfig,
    build_config,
    config_defaults,
    describe_config,
    load_profiles,
    profile_from_dict,
    read_profiles,
    resolve_device,
)
from daedalus.errors import DaedalusError, Problems, ProfileError, RegistryError, RunError
from daedalus.registry import get_agent, is_ref
from daedalus.runs.store import RunFolder, list_runs, load_checkpoint_into, resolve_run
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

DEFAULT_RUNS_DIR = Path("runs")


# --------------------------------------------------------------------------- validation


@dataclass
class ResolvedProfile:
    """A profile whose agent, env and config have all been resolved and checked."""

    profile: Profile
    spec: AgentSpec
    config: Any  # the typed config instance, or a ProfileConfig
    make_env: Callable[[int | None], Any]
    observation_space: Any
    action_space: Any
    #: Dict/Tuple observations are flattened for the agent (AgentSpec.flat_observations).
    flatten_observations: bool = False

    def env_factory(self, **extra_env_args: Any) -> Callable[..., Any]:
        """``make_env(seed)`` with extra constructor arguments (e.g. ``render_mode``)."""
        from daedalus.envs.make import env_factory_for

        return env_factory_for(self.profile, flatten_observations=self.flatten_observations, **extra_env_args)

    def resolved_dict(self) -> dict[str, Any]:
        """The profile with every default filled in and file references made absolute."""
        data = self.profile.to_dict()
        if self.spec.config_class is not None:
            data["config"] = {**config_defaults(self.spec.config_class), **_plain_config(self.config)}
        elif self.spec.default_config is not None:
            data["config"] = _plain_config(self.config)
        base = self.profile.base_dir
        data["agent_id"] = _absolute_ref(data["agent_id"], base)
        data["env_id"] = _absolute_ref(data["env_id"], base)
        for wrapper in data["wrappers"]:
            wrapper["id"] = _absolute_ref(wrapper["id"], base)
        return data


def _plain_config(config: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    if isinstance(config, ProfileConfig):
        return config.to_dict()
    return dict(config)


def _absolute_ref(ref: str, base: Path) -> str:
    if is_ref(ref):
        file_part, _, attr = ref.rpartition(":")
        if file_part.endswith(".py") and not Path(file_part).expanduser().is_absolute():
            for candidate in (base / file_part, Path.cwd() / file_part):
                if candidate.is_file():
                    return f"{candidate.resolve()}:{attr}"
    return ref


def validate(profile: Profile) -> ResolvedProfile:
    """Resolve the agent, the environment (one copy is built and closed) and the typed config.

    Every problem is collected and reported at once in a ProfileError naming the profile
    file and line, so that a batch fails before any training starts. A reference that the
    current trust rules refuse (see :func:`load_run`) raises a TrustError instead.
    """
    problems = Problems()
    spec: AgentSpec | None = None
    config: Any = None
    try:
        spec = get_agent(profile.agent_id, profile.base_dir)
    except RegistryError as exc:
        problems.add(profile.fail(("agent_id",), str(exc).rstrip("."), "Fix 'agent_id'."))
    if spec is not None:
        if spec.training_wrapper is None:
            problems.add(profile.fail(
                ("agent_id",),
                f"agent '{profile.agent_id}' was registered without a training wrapper, so it cannot be trained",
                "Pass training_wrapper= to register_agent().",
            ))
        with problems.collect():
            if spec.config_class is not None:
                config = build_config(spec.config_class, profile.config, profile)
            elif spec.default_config is not None:
                config = ProfileConfig(_with_declared_defaults(spec.default_config, profile))
            else:
                config = ProfileConfig(profile.config)
        if spec.check_profile is not None:
            with problems.collect():
                spec.check_profile(profile)
    from daedalus.envs.make import env_factory_for

    make_env: Any = None
    observation_space = action_space = None
    try:
        make_env = env_factory_for(profile)
        env = make_env(None)
        try:
            observation_space, action_space = env.observation_space, env.action_space
        finally:
            env.close()
    except RegistryError as exc:
        problems.add(profile.fail(("env_id",), str(exc).rstrip("."), "Fix 'env_id', 'env_args' or 'wrappers'."))
    except DaedalusError:
        raise
    except Exception as exc:
        problems.add(profile.fail(
            ("env_id",),
            f"creating environment '{profile.env_id}' failed: {type(exc).__name__}: {exc}",
            "Check env_id and env_args (and that the env's optional packages are installed).",
        ))
    flatten = False
    if spec is not None and observation_space is not None:
        with problems.collect():
            flatten = check_spaces(profile, spec, observation_space, action_space)
        if flatten:
            make_env = env_factory_for(profile, flatten_observations=True)
            observation_space = _flat_space(observation_space)
        if config is not None:
            with problems.collect():
                check_memory(profile, config, observation_space, action_space)
    problems.raise_if_any()
    assert spec is not None
    return ResolvedProfile(profile, spec, config, make_env, observation_space, action_space, flatten)


def _flat_space(space: Any) -> Any:
    from gymnasium import spaces

    return spaces.flatten_space(space)


#: Observation spaces that have no flat vector form.
_UNFLATTENABLE = ("Graph", "Sequence", "Text")


def check_spaces(profile: Profile, spec: AgentSpec, observation_space: Any, action_space: Any) -> bool:
    """Refuse spaces the agent cannot handle; returns whether observations must be flattened."""
    problems = Problems()
    if spec.action_spaces is not None and type(action_space).__name__ not in spec.action_spaces:
        problems.add(profile.fail(
            ("agent_id",),
            f"agent '{profile.agent_id}' acts in {' or '.join(spec.action_spaces)} action spaces, but "
            f"'{profile.env_id}' has {action_space}",
            f"Use an agent for {type(action_space).__name__} actions (ppo and a2c: Discrete, MultiDiscrete, "
            "Box; dqn: Discrete; sac and td3: Box) or another environment.",
        ))
    flatten = False
    if spec.flat_observations:
        kind = type(observation_space).__name__
        nested = _nested_space_names(observation_space)
        bad = sorted(set(nested) & set(_UNFLATTENABLE))
        if bad:
            problems.add(profile.fail(
                ("env_id",),
                f"agent '{profile.agent_id}' takes flat vector observations, and {', '.join(bad)} "
                f"observation spaces have no flat form ('{profile.env_id}' observes {observation_space})",
                "Add a wrapper that turns observations into a Box (wrappers: [...]) or use another agent.",
            ))
        flatten = kind in ("Dict", "Tuple") and not bad
    problems.raise_if_any()
    return flatten


def _nested_space_names(space: Any) -> list[str]:
    from gymnasium import spaces

    names = [type(space).__name__]
    if isinstance(space, spaces.Dict):
        for sub in space.spaces.values():
            names += _nested_space_names(sub)
    elif isinstance(space, spaces.Tuple):
        for sub in space.spaces:
            names += _nested_space_names(sub)
    return names


def check_memory(profile: Profile, config: Any, observation_space: Any, action_space: Any) -> None:
    """Refuse sizes whose estimated memory exceeds this machine's memory (with the estimate)."""
    from daedalus.params import estimate_memory_bytes, machine_memory_bytes

    estimate = estimate_memory_bytes(config, observation_space, action_space, profile.num_envs)
    available = machine_memory_bytes()
    if available is None or estimate.total <= available:
        return
    gib = 1024**3
    raise profile.fail(
        ("config",),
        f"the sizes in this profile need about {estimate.total / gib:,.1f} GiB "
        f"({estimate.describe()}), more than this machine's {available / gib:,.1f} GiB of memory",
        "Make the largest of them smaller.",
    )


def _with_declared_defaults(defaults: dict[str, Any], profile: Profile) -> dict[str, Any]:
    from daedalus.errors import did_you_mean

    for key in profile.config:
        if key not in defaults:
            hint = did_you_mean(key, list(defaults))
            raise profile.fail(
                ("config", key),
                f"unknown config key '{key}' for agent '{profile.agent_id}'",
                f"{hint.strip() or 'Remove it.'} Declared parameters: {', '.join(defaults) or 'none'}.",
            )
    return {**defaults, **profile.config}


def load(
    path: str | Path, profile_ids: Sequence[str] | None = None, overrides: Sequence[str] = ()
) -> list[ResolvedProfile]:
    """Load and validate profiles from a file: every one is checked before anything trains.

    The problems of all profiles are reported together in one ProfileError.
    """
    problems = Problems()
    resolved = []
    for profile in read_profiles(path, profile_ids, overrides, problems):
        if not (profile.agent_id and profile.env_id):
            continue  # already reported: nothing to resolve
        with problems.collect():
            resolved.append(validate(profile))
    problems.raise_if_any()
    return resolved


# --------------------------------------------------------------------------- agents


def make_agent(resolved: ResolvedProfile) -> Any:
    """Call the agent factory with the arguments its parameter names ask for."""
    space_obs, space_act = resolved.observation_space, resolved.action_space
    shape = getattr(space_obs, "shape", None)
    available: dict[str, Any] = {
        "observation_space": space_obs,
        "action_space": space_act,
        "config": resolved.config,
        "device": resolve_device(resolved.profile.device),
        "obs": shape,
        "obs_shape": shape,
        "env_id": resolved.profile.env_id,
        "seed": resolved.profile.seed,
        "num_envs": resolved.profile.num_envs,
    }
    if shape is not None:
        import math

        available["obs_dim"] = int(math.prod(shape))
    if hasattr(space_act, "n"):
        available["n_actions"] = int(space_act.n)
    factory = resolved.spec.agent_factory
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(space_obs, space_act, resolved.config)
    kwargs: dict[str, Any] = {}
    for name, param in params.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update({k: v for k, v in available.items() if k not in kwargs})
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        elif name in available:
            kwargs[name] = available[name]
        elif param.default is inspect.Parameter.empty:
            raise ProfileError(
                f"agent '{resolved.profile.agent_id}': its factory asks for '{name}', which Daedalus does not "
                f"provide. Factory parameters are matched by name from: {', '.join(sorted(available))}."
            )
    return factory(**kwargs)


# --------------------------------------------------------------------------- training


@dataclass
class RunResult:
    """The outcome of training one profile."""

    run_id: str
    path: Path
    profile_id: str
    agent_id: str
    env_id: str
    status: str
    steps: int = 0
    duration_s: float = 0.0
    best_return: float | None = None
    final_return: float | None = None
    error: str | None = None
    artifacts: dict[str, Any] = field(default_factory=dict, repr=False)


def train(
    source: str | Path | Profile | None = None,
    profile_id: str | None = None,
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    overrides: Sequence[str] = (),
    **profile_fields: Any,
) -> RunResult:
    """Train one profile and return its result.

    ``train("examples/cartpole.yaml")`` (a file with one profile, or name it with
    ``profile_id``), ``train(profile)`` or ``train(agent_id="ppo", env_id="CartPole-v1",
    config={"total_steps": 50_000})``.
    """
    if isinstance(source, Profile):
        profile = source
    elif source is not None:
        profiles = load_profiles(source, [profile_id] if profile_id else None, overrides)
        if len(profiles) != 1:
            ids = ", ".join(p.profile_id for p in profiles)
            raise ProfileError(f"{source} holds several profiles ({ids}); name one, or use train_many().")
        profile = profiles[0]
    else:
        profile = profile_from_dict(profile_id or str(profile_fields.get("agent_id", "run")), profile_fields)
    return train_resolved(validate(profile), runs_dir=Path(runs_dir))


def train_many(
    path: str | Path,
    profile_ids: Sequence[str] | None = None,
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    overrides: Sequence[str] = (),
    batch_id: str | None = None,
    keep_going: bool = True,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Validate every selected profile, then train them one after another.

    A failed profile does not stop the others (unless ``keep_going`` is false); an
    interrupted one (Ctrl-C, SIGTERM) does.
    """
    return train_sequence(
        load(path, profile_ids, overrides), runs_dir=runs_dir, batch_id=batch_id,
        keep_going=keep_going, on_result=on_result,
    )


def train_sequence(
    resolved: Sequence[ResolvedProfile],
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    batch_id: str | None = None,
    keep_going: bool = True,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Train validated profiles one after another (see :func:`train_many`)."""
    results = []
    for item in resolved:
        result = train_resolved(item, runs_dir=Path(runs_dir), batch_id=batch_id)
        results.append(result)
        if on_result is not None:
            on_result(result)
        if result.status == "interrupted" or (result.status == "failed" and not keep_going):
            break
    return results


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that training unwinds and the agent is saved."""


def install_signal_handlers() -> None:
    """Make SIGTERM behave like Ctrl-C (called by the CLI, not on import)."""

    def on_term(signum: int, frame: Any) -> None:
        raise _Interrupted()

    signal.signal(signal.SIGTERM, on_term)


def train_resolved(
    resolved: ResolvedProfile, runs_dir: Path = DEFAULT_RUNS_DIR, batch_id: str | None = None
) -> RunResult:
    """Train a validated profile in a new run folder; the run is saved whatever happens."""
    import yaml

    from daedalus.tracking.metrics import CSVMetricWriter, MetricLogger
    from daedalus.tracking.progress import _ACTIVE, Progress

    profile = resolved.profile
    batch_id = batch_id or os.environ.get("DAEDALUS_BATCH_ID")
    text = yaml.safe_dump({profile.profile_id: resolved.resolved_dict()}, sort_keys=False)
    folder = RunFolder.create(
        runs_dir,
        profile.profile_id,
        {
            "agent_id": profile.agent_id,
            "env_id": profile.env_id,
            "seed": profile.seed,
            "batch_id": batch_id,
        },
        text,
    )
    sinks: list[Any] = [CSVMetricWriter(folder.path / "metrics.csv")]
    sinks.extend(_optional_sinks(folder.path))
    logger = MetricLogger(sinks)
    total_steps = getattr(resolved.config, "total_steps", None)
    progress = Progress(
        profile.profile_id, total_steps if isinstance(total_steps, int) else None, live=_live_mode(), logger=logger
    )
    artifacts: dict[str, Any] = {}
    state: dict[str, Any] = {"steps": 0, "last_checkpoint": None}
    keep_last = getattr(resolved.config, "keep_last", None)

    def save_callback(agent: Any, artifacts_: dict[str, Any], step: int, name: str) -> None:
        info = folder.save_checkpoint(agent, name, step)
        folder.write_artifacts(artifacts_)
        state["steps"] = max(int(state["steps"] or 0), int(step))
        state["last_checkpoint"] = name
        series = re.fullmatch(r"(.+-)\d+", name)  # periodic snapshots: step-<N>, episode-<N>, ...
        if series and isinstance(keep_last, int) and keep_last > 0:
            folder.prune(series.group(1), keep_last)
        folder.update(steps=max(int(step), progress.steps), last_checkpoint=name, checkpoint_format=info.format)

    agent: Any = None
    status, error = "failed", None
    started = time.perf_counter()
    _ACTIVE.append(progress)
    print(f"run {folder.run_id}: training '{profile.agent_id}' on '{profile.env_id}' -> {folder.path}", flush=True)
    stop = _StopOnce()
    try:
        stop.install()
        seed_everything(profile.seed)
        agent = make_agent(resolved)
        context = TrainContext(
            profile_id=profile.profile_id,
            agent_id=profile.agent_id,
            env_id=profile.env_id,
            env_args=dict(profile.env_args),
            num_envs=profile.num_envs,
            seed=profile.seed,
            vectorization=profile.vectorization,
            device=resolve_device(profile.device),
            config=ProfileConfig(profile.config),
            make_env=resolved.make_env,
            logger=logger,
            progress=progress,
            checkpoint=lambda agent_, name, step: save_callback(agent_, artifacts, step, name),
            run_dir=folder.path,
            loop=profile.loop,
        )
        progress.start()
        wrapper = resolved.spec.training_wrapper
        assert wrapper is not None
        args: list[Any] = [resolved.make_env, agent, resolved.config, artifacts, save_callback]
        if _accepts(wrapper, "context"):
            wrapper(*args, context=context)
        else:
            wrapper(*args)
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as exc:
        status = "failed"
        error = {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }
    finally:
        # From here on a signal never unwinds the save: the first one (when training had
        # completed) only cuts the final evaluation short, any other is noted and ignored.
        stop.stopping = status != "completed"
        _ACTIVE.remove(progress)
        progress.stop()
        if status == "completed":
            try:
                final_evaluation(resolved, agent, artifacts, folder)
            except KeyboardInterrupt:
                artifacts["final_evaluation_error"] = "interrupted (Ctrl-C or SIGTERM)"
                print("final evaluation interrupted; saving the run", flush=True)
        stop.stopping = True
        steps = max(progress.steps, int(state["steps"] or 0))
        if agent is not None:
            name = "final" if status in ("completed", "interrupted") else "last"
            try:
                save_callback(agent, artifacts, steps, name)
            except Exception as exc:  # saving must never lose the run record
                error = error or {"type": type(exc).__name__, "message": f"saving the agent failed: {exc}"}
                status = "failed"
        else:
            folder.write_artifacts(artifacts)
        logger.close()
        best, final = _returns_summary(artifacts, progress)
        data = folder.finish(status, error=error, steps=steps, best_return=best, final_return=final)
        stop.restore()
    duration = time.perf_counter() - started
    message = error["message"] if error else None
    line = f"run {folder.run_id}: {status} after {steps} steps in {duration:.1f}s"
    if final is not None:
        line += f", final return {final:.2f}"
    print(line + (f" -- error: {message}" if message else ""), flush=True)
    return RunResult(
        run_id=folder.run_id,
        path=folder.path,
        profile_id=profile.profile_id,
        agent_id=profile.agent_id,
        env_id=profile.env_id,
        status=status,
        steps=steps,
        duration_s=float(data.get("duration_s") or duration),
        best_return=best,
        final_return=final,
        error=message,
        artifacts=artifacts,
    )


def final_evaluation(resolved: ResolvedProfile, agent: Any, artifacts: dict[str, Any], folder: RunFolder) -> None:
    """Evaluate a finished agent when its config asks for it (``final_eval_episodes``).

    The result goes to ``artifacts["final_evaluation"]`` and ``eval.json``, and is printed.
    Seeds differ from periodic evaluations (``seed + 100_000``), so the score is on fresh episodes.
    """
    episodes = getattr(resolved.config, "final_eval_episodes", 0)
    if not isinstance(episodes, int) or episodes <= 0:
        return
    from daedalus.evaluation import evaluate

    deterministic = bool(getattr(resolved.config, "eval_deterministic", True))
    seed = (resolved.profile.seed or 0) + 100_000
    try:
        result = evaluate(agent, resolved.make_env, n_episodes=episodes, deterministic=deterministic, seed=seed)
    except Exception as exc:  # the trained agent is saved regardless; say what went wrong
        artifacts["final_evaluation_error"] = f"{type(exc).__name__}: {exc}"
        print(f"evaluation failed: {type(exc).__name__}: {exc}", flush=True)
        return
    entry = {**result.to_dict(), "checkpoint": "final", "evaluated_at": time.time()}
    artifacts["final_evaluation"] = entry
    folder.write_json("eval.json", {"latest": entry, "history": [entry]})
    print(f"evaluation: {result.format()}", flush=True)


def seed_everything(seed: int | None) -> None:
    """Seed Python's, NumPy's and (when already imported) torch's global generators.

    Called before the agent is built, so that weight initialisation in a custom agent is
    reproducible from the profile's seed, as with SB3's ``set_random_seed``.
    """
    if seed is None:
        return
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def _optional_sinks(run_dir: Path) -> list[Any]:
    try:
        from daedalus.tracking.tensorboard import TensorBoardWriter
    except ImportError:  # pragma: no cover - shipped with the package
        return []
    return [TensorBoardWriter(run_dir / "tb")]


def _live_mode() -> bool | None:
    mode = os.environ.get("DAEDALUS_PROGRESS", "").lower()
    return {"plain": False, "live": True}.get(mode)


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class _StopOnce:
    """SIGINT/SIGTERM while a run trains: the first one stops training, later ones never tear the save.

    While ``stopping`` is false a signal raises KeyboardInterrupt (and sets ``stopping``);
    once it is true, signals are only acknowledged. Installed by :func:`train_resolved` in the
    main thread only (signal handlers cannot be set elsewhere); :meth:`restore` puts the
    previous handlers back.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (a no-op outside the main thread)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            raise _Interrupted() if signum == signal.SIGTERM else KeyboardInterrupt()
        print("already stopping: the run is being saved, please wait", file=sys.stderr, flush=True)

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _returns_summary(artifacts: dict[str, Any], progress: Any) -> tuple[float | None, float | None]:
    evaluations = artifacts.get("evaluations")
    if isinstance(evaluations, list) and evaluations:
        means: list[float] = [
            float(e["mean_return"]) for e in evaluations if isinstance(e, dict) and e.get("mean_return") is not None
        ]
        if means:
            final_eval = artifacts.get("final_evaluation")
            final = final_eval.get("mean_return") if isinstance(final_eval, dict) else means[-1]
            return float(max(means)), float(final) if final is not None else None
    mean = progress.mean_return
    return (max(progress.recent_returns) if progress.recent_returns else None), mean


# --------------------------------------------------------------------------- batch


@dataclass
class BatchResult:
    """The outcome of ``daedalus batch``: one result per profile."""

    batch_id: str
    results: list[RunResult]

    @property
    def ok(self) -> bool:
        """Whether every profile completed."""
        return all(r.status == "completed" for r in self.results)


def batch(
    path: str | Path,
    *,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    parallel: int = 1,
    overrides: Sequence[str] = (),
) -> BatchResult:
    """Train every profile of a file: in this process, or in ``parallel`` worker processes.

    All profiles are validated first. A failed profile does not stop the others.
    """
    batch_id = uuid.uuid4().hex[:12]
    resolved = load(path, None, overrides)
    if parallel <= 1:
        return BatchResult(batch_id, train_sequence(resolved, runs_dir=runs_dir, batch_id=batch_id))
    return BatchResult(batch_id, _batch_subprocesses(path, [r.profile for r in resolved], Path(runs_dir), parallel, overrides, batch_id))


def _batch_subprocesses(
    path: str | Path,
    profiles: list[Profile],
    runs_dir: Path,
    parallel: int,
    overrides: Sequence[str],
    batch_id: str,
) -> list[RunResult]:
    env = {**os.environ, "DAEDALUS_BATCH_ID": batch_id, "DAEDALUS_PROGRESS": "plain"}
    pending = list(profiles)
    running: dict[str, subprocess.Popen[bytes]] = {}
    exit_codes: dict[str, int] = {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                profile = pending.pop(0)
                cmd = [sys.executable, "-m", "daedalus", "train", str(path), profile.profile_id, "--runs-dir", str(runs_dir)]
                for item in overrides:
                    cmd += ["--set", item]
                running[profile.profile_id] = subprocess.Popen(cmd, env=env)
            for pid, proc in list(running.items()):
                code = proc.poll()
                if code is not None:
                    exit_codes[pid] = code
                    del running[pid]
            time.sleep(0.05)
    except KeyboardInterrupt:
        for proc in running.values():
            proc.send_signal(signal.SIGINT)
        for pid, proc in running.items():
            exit_codes[pid] = proc.wait()
    rows = {r["profile_id"]: r for r in list_runs(runs_dir, batch_id=batch_id)}
    results = []
    for profile in profiles:
        row = rows.get(profile.profile_id)
        if row is None:
            code = exit_codes.get(profile.profile_id)
            status = "failed" if code is not None else "interrupted"
            results.append(RunResult("-", Path("-"), profile.profile_id, profile.agent_id, profile.env_id, status, error=f"worker exited with code {code}" if code is not None else "not started"))
            continue
        results.append(_result_from_row(row))
    return results


def _result_from_row(row: dict[str, Any]) -> RunResult:
    error = row.get("error")
    return RunResult(
        run_id=row["run_id"],
        path=Path(row["path"]),
        profile_id=row["profile_id"],
        agent_id=row.get("agent_id") or "",
        env_id=row.get("env_id") or "",
        status=row.get("status") or "?",
        steps=int(row.get("steps") or 0),
        duration_s=float(row.get("duration_s") or ((row.get("finished_at") or 0) - (row.get("started_at") or 0))),
        best_return=row.get("best_return"),
        final_return=row.get("final_return"),
        error=error.get("message") if isinstance(error, dict) else None,
    )


# --------------------------------------------------------------------------- runs


@dataclass
class LoadedRun:
    """A saved run: its run.json, its resolved profile and the agent restored from a checkpoint."""

    path: Path
    meta: dict[str, Any]
    profile: Profile
    agent: Any
    checkpoint: str
    resolved: ResolvedProfile = field(repr=False)


def load_run(
    path: str | Path,
    checkpoint: str | None = None,
    runs_dir: str | Path | None = None,
    *,
    trust_code: bool = False,
) -> LoadedRun:
    """Load a run folder: metadata, resolved profile and the agent from ``checkpoint``.

    The default checkpoint is ``final`` when it exists, else the newest one.

    A run folder is data. Unless ``trust_code`` is true, its profile may only name built-in
    agents, envs and wrappers, Gymnasium ids, ids registered by the current project and
    plugins, and references into the current project's modules (``.daedalus.yaml`` found
    from the working directory, never from the run folder); anything else raises a
    TrustError before it is imported. With ``trust_code``, the references that will be
    imported are printed first. See docs/security.md.
    """
    from daedalus.registry import load_project_modules, untrusted_source

    load_project_modules()
    folder = resolve_run(path, Path(runs_dir) if runs_dir else None)
    meta = folder.refresh_status()
    profile_file = folder.path / "profile.yaml"
    if not profile_file.is_file():
        raise RunError(f"{folder.path}: profile.yaml is missing, so the agent cannot be rebuilt.")
    (profile,) = load_profiles(profile_file)
    if trust_code:
        refs = code_references(profile)
        if refs:
            listed = "; ".join(f"{key}: {ref}" for key, ref in refs)
            print(f"--trust-code: importing code named by {folder.path}: {listed}", file=sys.stderr, flush=True)
        resolved = validate(profile)
    else:
        with untrusted_source(f"run folder {folder.path}"):
            resolved = validate(profile)
    info = folder.checkpoint(checkpoint)
    agent = make_agent(resolved)
    load_checkpoint_into(agent, info)
    return LoadedRun(folder.path, meta, profile, agent, info.name, resolved)


def code_references(profile: Profile) -> list[tuple[str, str]]:
    """``(key, reference)`` for every ``pkg.mod:Obj`` / ``file.py:Obj`` a profile names."""
    refs = [("agent_id", profile.agent_id), ("env_id", profile.env_id)]
    refs += [(f"wrappers[{i}]", w.ref) for i, w in enumerate(profile.wrappers)]
    loop = profile.loop or {}
    if isinstance(loop.get("class"), str):
        refs.append(("loop.class", loop["class"]))
    return [(key, ref) for key, ref in refs if is_ref(ref) and not _is_plain_gym_id(ref)]


def _is_plain_gym_id(env_id: str) -> bool:
    import gymnasium

    return env_id in gymnasium.registry


def runs_table(runs_dir: str | Path = DEFAULT_RUNS_DIR, **filters: Any) -> list[dict[str, Any]]:
    """Run records for ``daedalus runs list`` (dead ``running`` runs become ``crashed``)."""
    return list_runs(Path(runs_dir), **filters)


def show_run(run: str | Path, runs_dir: str | Path | None = None) -> dict[str, Any]:
    """run.json of one run plus its checkpoints, files and problems.

    A run folder whose run.json cannot be read still shows its path, files and a
    ``problems`` list saying what is wrong (never a traceback).
    """
    folder = resolve_run(run, Path(runs_dir) if runs_dir else None)
    record = folder.index_record()  # validated; status "corrupt" when run.json is damaged
    try:
        data = folder.read()
    except RunError:
        data = {}
    data.update(run_id=folder.run_id, path=record["path"], status=record["status"])
    if "error" in record:
        data["error"] = record["error"]
    data["problems"] = folder.describe_problems()
    data["checkpoints"] = [
        {"name": c.name, "step": c.step, "format": c.format} for c in folder.checkpoints()
    ]
    data["files"] = sorted(p.name for p in folder.path.iterdir() if not p.name.startswith("."))
    return data


# --------------------------------------------------------------------------- describe


def describe_agent(agent_id: str) -> dict[str, Any]:
    """An agent's id, description and, for typed configs, every field (name, type, default, help)."""
    spec = get_agent(agent_id)
    if spec.config_class is not None:
        fields = [
            {"name": f.name, "type": f.type_name, "default": f.default, "help": f.help}
            for f in describe_config(spec.config_class)
        ]
    else:
        fields = [
            {"name": k, "type": type(v).__name__ if v is not None else "any", "default": v, "help": ""}
            for k, v in (spec.default_config or {}).items()
        ]
    return {"agent_id": spec.agent_id, "description": spec.description, "fields": fields}


# --------------------------------------------------------------------------- evaluation


def evaluate_run(
    run: str | Path,
    *,
    checkpoint: str | None = None,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = 0,
    runs_dir: str | Path | None = None,
    trust_code: bool = False,
) -> tuple[Any, Path]:
    """Evaluate a saved run's agent; the result is added to the run's ``eval.json``.

    Returns ``(EvalResult, path of eval.json)``. ``trust_code``: see :func:`load_run`.
    """
    from daedalus.evaluation import evaluate
    from daedalus.runs.io import read_json

    loaded = load_run(run, checkpoint=checkpoint, runs_dir=runs_dir, trust_code=trust_code)
    result = evaluate(loaded.agent, loaded.resolved.make_env, n_episodes=episodes, deterministic=deterministic, seed=seed)
    eval_file = loaded.path / "eval.json"
    history: list[Any] = []
    if eval_file.is_file():
        try:
            previous = read_json(eval_file)
            history = previous.get("history", []) if isinstance(previous, dict) else []
        except ValueError:
            history = []
    entry = {**result.to_dict(), "checkpoint": loaded.checkpoint, "evaluated_at": time.time()}
    history.append(entry)
    RunFolder(loaded.path).write_json("eval.json", {"latest": entry, "history": history})
    return result, eval_file


def replay(
    run: str | Path,
    video: str | Path | None = None,
    *,
    checkpoint: str | None = None,
    episodes: int = 1,
    deterministic: bool = True,
    seed: int | None = 0,
    runs_dir: str | Path | None = None,
    trust_code: bool = False,
) -> tuple[Any, Path]:
    """Record ``episodes`` episodes of a saved run's agent to a video (default ``<run>/videos/``).

    ``trust_code``: see :func:`load_run`.
    """
    from daedalus.evaluation import record_video

    # Render off-screen: pygame-based envs otherwise look for a display.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    loaded = load_run(run, checkpoint=checkpoint, runs_dir=runs_dir, trust_code=trust_code)
    target = Path(video) if video else loaded.path / "videos" / f"{loaded.checkpoint}-seed{seed}.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    make_env = loaded.resolved.env_factory(render_mode="rgb_array")
    result = record_video(loaded.agent, make_env, target, n_episodes=episodes, deterministic=deterministic, seed=seed)
    return result, target


def evaluate_profile(
    path: str | Path,
    profile_id: str | None = None,
    episodes: int | None = None,
    *,
    seed: int | None = None,
) -> Any:
    """Run a stepwise profile's agent without memorize/update (Gym Loop's ``evaluate``).

    The agent is built from the profile as written (a fresh agent: point one of its
    parameters at saved weights to evaluate them; to evaluate a trained run use
    ``daedalus evaluate RUN``). ``episodes`` defaults to the loop's ``eval_episodes``;
    episode ``i`` is reset with seed ``seed + i`` (default: the profile's seed).
    """
    from daedalus.agents.stepwise import NoProgress, is_stepwise, parse_loop_section
    from daedalus.tracking.metrics import MetricLogger

    profiles = load_profiles(path, [profile_id] if profile_id else None)
    if len(profiles) != 1:
        ids = ", ".join(p.profile_id for p in profiles)
        raise ProfileError(f"{path} holds several profiles ({ids}); name the one to evaluate.")
    profile = profiles[0]
    resolved = validate(profile)
    if not is_stepwise(resolved.spec):
        raise profile.fail(
            ("agent_id",),
            f"agent '{profile.agent_id}' is not a stepwise agent; evaluating a profile runs a "
            "stepwise agent without memorize/update",
            "Train it ('daedalus train FILE') and evaluate the run ('daedalus evaluate RUN').",
        )
    agent = make_agent(resolved)
    loop_cls, params, _ = parse_loop_section(profile.loop, profile.fail, profile.base_dir)
    context = TrainContext(
        profile_id=profile.profile_id,
        agent_id=profile.agent_id,
        env_id=profile.env_id,
        env_args=dict(profile.env_args),
        num_envs=1,
        seed=profile.seed,
        vectorization=profile.vectorization,
        device=profile.device,
        config=resolved.config,
        make_env=resolved.make_env,
        logger=MetricLogger([]),
        progress=NoProgress(),
        checkpoint=lambda *args: None,
        loop=profile.loop,
        extras={
            "env_factory_with_render_mode": lambda mode: resolved.env_factory(render_mode=mode),
            "eval_seed": profile.seed if seed is None else seed,
        },
    )
    loop = loop_cls(agent, resolved.make_env, context, {}, None, **params)
    return loop.evaluate(episodes)
