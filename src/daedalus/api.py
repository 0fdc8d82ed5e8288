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
)
from daedalus.errors import DaedalusError, ProfileError, RegistryError, RunError
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

    Raises a ProfileError naming the profile file and line for anything wrong, so that a
    batch fails before any training starts.
    """
    try:
        spec = get_agent(profile.agent_id, profile.base_dir)
    except RegistryError as exc:
        raise profile.fail(("agent_id",), str(exc).rstrip("."), "Fix 'agent_id'.") from None
    if spec.training_wrapper is None:
        raise profile.fail(
            ("agent_id",),
            f"agent '{profile.agent_id}' was registered without a training wrapper, so it cannot be trained",
            "Pass training_wrapper= to register_agent().",
        )
    if spec.config_class is not None:
        config: Any = build_config(spec.config_class, profile.config, profile)
    elif spec.default_config is not None:
        config = ProfileConfig(_with_declared_defaults(spec.default_config, profile))
    else:
        config = ProfileConfig(profile.config)
    if spec.check_profile is not None:
        spec.check_profile(profile)
    from daedalus.envs.make import env_factory_for

    try:
        make_env = env_factory_for(profile)
        env = make_env(None)
    except RegistryError as exc:
        raise profile.fail(("env_id",), str(exc).rstrip("."), "Fix 'env_id', 'env_args' or 'wrappers'.") from None
    except DaedalusError:
        raise
    except Exception as exc:
        raise profile.fail(
            ("env_id",),
            f"creating environment '{profile.env_id}' failed: {type(exc).__name__}: {exc}",
            "Check env_id and env_args (and that the env's optional packages are installed).",
        ) from None
    try:
        observation_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    if spec.action_spaces is not None and type(action_space).__name__ not in spec.action_spaces:
        raise profile.fail(
            ("agent_id",),
            f"agent '{profile.agent_id}' acts in {' or '.join(spec.action_spaces)} action spaces, but "
            f"'{profile.env_id}' has {action_space}",
            f"Use an agent for {type(action_space).__name__} actions (ppo and a2c take any; dqn Discrete; "
            "sac and td3 Box) or another environment.",
        )
    return ResolvedProfile(profile, spec, config, make_env, observation_space, action_space)


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
    """Load and validate profiles from a file: every one is checked before anything trains."""
    return [validate(p) for p in load_profiles(path, profile_ids, overrides)]


# --------------------------------------------------------------------------- agents


def make_agent(resolved: ResolvedProfile) -> Any:
    """Call the agent factory with the arguments its parameter names ask for."""
    space_obs, space_act = resolved.observation_space, resolved.action_space
    shape = getattr(space_obs, "shape", None)
    available: dict[str, Any] = {
        "observation_space": space_obs,
        "action_space": space_act,
        "config": resolved.config,
        "device": resolved.profile.device,
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
    try:
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
            device=profile.device,
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
        _ACTIVE.remove(progress)
        progress.stop()
        if status == "completed":
            final_evaluation(resolved, agent, artifacts, folder)
        steps = max(progress.steps, int(state["steps"] or 0))
        with _signals_blocked():
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


class _signals_blocked:
    """Hold SIGINT/SIGTERM while the final save runs, so a second Ctrl-C cannot tear it."""

    def __enter__(self) -> None:
        self._old = None
        if hasattr(signal, "pthread_sigmask"):
            self._old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


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


def load_run(path: str | Path, checkpoint: str | None = None, runs_dir: str | Path | None = None) -> LoadedRun:
    """Load a run folder: metadata, resolved profile and the agent from ``checkpoint``.

    The default checkpoint is ``final`` when it exists, else the newest one.
    """
    from daedalus.registry import load_project_modules

    load_project_modules()
    folder = resolve_run(path, Path(runs_dir) if runs_dir else None)
    meta = folder.refresh_status()
    profile_file = folder.path / "profile.yaml"
    if not profile_file.is_file():
        raise RunError(f"{folder.path}: profile.yaml is missing, so the agent cannot be rebuilt.")
    (profile,) = load_profiles(profile_file)
    resolved = validate(profile)
    info = folder.checkpoint(checkpoint)
    agent = make_agent(resolved)
    load_checkpoint_into(agent, info)
    return LoadedRun(folder.path, meta, profile, agent, info.name, resolved)


def runs_table(runs_dir: str | Path = DEFAULT_RUNS_DIR, **filters: Any) -> list[dict[str, Any]]:
    """Run records for ``daedalus runs list`` (dead ``running`` runs become ``crashed``)."""
    return list_runs(Path(runs_dir), **filters)


def show_run(run: str | Path, runs_dir: str | Path | None = None) -> dict[str, Any]:
    """run.json of one run plus its checkpoints and files."""
    folder = resolve_run(run, Path(runs_dir) if runs_dir else None)
    data = folder.refresh_status()
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
) -> tuple[Any, Path]:
    """Evaluate a saved run's agent; the result is added to the run's ``eval.json``.

    Returns ``(EvalResult, path of eval.json)``.
    """
    from daedalus.evaluation import evaluate
    from daedalus.runs.io import read_json

    loaded = load_run(run, checkpoint=checkpoint, runs_dir=runs_dir)
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
) -> tuple[Any, Path]:
    """Record ``episodes`` episodes of a saved run's agent to a video (default ``<run>/videos/``)."""
    from daedalus.envs.make import env_factory_for
    from daedalus.evaluation import record_video

    # Render off-screen: pygame-based envs otherwise look for a display.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    loaded = load_run(run, checkpoint=checkpoint, runs_dir=runs_dir)
    target = Path(video) if video else loaded.path / "videos" / f"{loaded.checkpoint}-seed{seed}.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    make_env = env_factory_for(loaded.profile, render_mode="rgb_array")
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
    from daedalus.envs.make import env_factory_for
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
            "env_factory_with_render_mode": lambda mode: env_factory_for(profile, render_mode=mode),
            "eval_seed": profile.seed if seed is None else seed,
        },
    )
    loop = loop_cls(agent, resolved.make_env, context, {}, None, **params)
    return loop.evaluate(episodes)
