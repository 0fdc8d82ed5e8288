"""One training session: a resolved profile trained in a new run folder, saved whatever happens.

:func:`train_resolved` is the session: run folder, metric sinks, progress, the agent, the
training wrapper, the final evaluation and the save, with SIGINT/SIGTERM turned into a
clean stop (:class:`_StopOnce`). :func:`train`, :func:`train_many` and
:func:`train_sequence` resolve profiles and run sessions one after another.
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from daedalus.api.resolve import (
    ResolvedProfile,
    apply_torch_threads,
    initial_torch_threads,
    load,
    load_run,
    make_agent,
    validate,
)
from daedalus.config import Profile, ProfileConfig, load_profiles, profile_from_dict, resolve_device
from daedalus.envs.make import env_factory_for
from daedalus.errors import ProfileError
from daedalus.hooks import Hooks
from daedalus.runs.store import RunFolder
from daedalus.types import TrainContext

DEFAULT_RUNS_DIR = Path("runs")


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
    callbacks: Sequence[Any] = (),
    **profile_fields: Any,
) -> RunResult:
    """Train one profile and return its result.

    ``train("examples/cartpole.yaml")`` (a file with one profile, or name it with
    ``profile_id``), ``train(profile)`` or ``train(agent_id="ppo", env_id="CartPole-v1",
    config={"total_steps": 50_000})``. ``callbacks`` are hook objects (see
    :mod:`daedalus.hooks`), added to those the profile lists.
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
    return train_resolved(validate(profile), runs_dir=Path(runs_dir), callbacks=callbacks)


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
    resolved: ResolvedProfile,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    batch_id: str | None = None,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train a validated profile in a new run folder; the run is saved whatever happens.

    The torch thread count the config sets (``torch_threads``) holds for the rest of the
    process: training, periodic and final evaluation alike.
    """
    import yaml

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
            "profile_sha256": text_digest(text),
        },
        text,
    )
    return run_session(resolved, folder, callbacks)


@dataclass
class ResumePoint:
    """Where a resumed session starts (built by :func:`daedalus.api.resume.resume`)."""

    checkpoint: Any  # daedalus.runs.store.CheckpointInfo
    #: The checkpoint's session.json: journal steps, global RNG states, trailing returns, ...
    session: dict[str, Any]
    step: int
    journal: Any  # daedalus.rollout.journal.EnvJournal, cut to the checkpoint
    artifacts: dict[str, Any]


def run_session(
    resolved: ResolvedProfile,
    folder: RunFolder,
    callbacks: Sequence[Any] = (),
    resume: ResumePoint | None = None,
) -> RunResult:
    """Train ``resolved`` in ``folder`` (new, or reopened for ``resume``) and save it whatever happens."""
    from daedalus.rollout.journal import EnvJournal
    from daedalus.runs.store import load_checkpoint_into
    from daedalus.tracking.metrics import CSVMetricWriter, MetricLogger
    from daedalus.tracking.progress import _ACTIVE, Progress

    profile = resolved.profile
    resume_step = resume.step if resume is not None else None
    sinks: list[Any] = [CSVMetricWriter(folder.path / "metrics.csv", keep_until=resume_step)]
    sinks.extend(_optional_sinks(folder.path, resume_step))
    logger = MetricLogger(sinks)
    total_steps = getattr(resolved.config, "total_steps", None)
    progress = Progress(
        profile.profile_id, total_steps if isinstance(total_steps, int) else None, live=_live_mode(), logger=logger
    )
    artifacts: dict[str, Any] = resume.artifacts if resume is not None else {}
    journal = resume.journal if resume is not None else EnvJournal(folder.path / "journal")
    state: dict[str, Any] = {"steps": resume_step or 0, "last_checkpoint": None, "exact": True}
    extras: dict[str, Any] = {}
    if resume is not None:
        extras["recent_returns"] = list(resume.session.get("recent_returns") or [])
        extras["train_seconds"] = float(resume.session.get("train_seconds") or 0.0)
        for key in ("loop", "last_update_metrics"):
            if isinstance(resume.session.get(key), dict):
                extras["loop_state" if key == "loop" else key] = resume.session[key]
    keep_last = getattr(resolved.config, "keep_last", None)
    if resume is None:
        write_code_fingerprint(folder.path, resolved)

    def save_callback(agent: Any, artifacts_: dict[str, Any], step: int, name: str) -> None:
        for sink in sinks:  # what was logged up to this checkpoint is on disk with it
            flush = getattr(sink, "flush", None)
            if flush is not None:
                flush()
        session = {
            "step": int(step),
            "journal_steps": journal.flush(),
            "exact": bool(state["exact"]),
            "recent_returns": [float(r) for r in extras.get("recent_returns", [])],
            "train_seconds": float(extras.get("train_seconds_now", extras.get("train_seconds", 0.0))),
            "rng": global_rng_state(),
        }
        if isinstance(extras.get("loop_state"), dict):  # a stepwise loop: its episode counter
            session["loop"] = extras["loop_state"]
        if extras.get("last_update_metrics"):  # a replay loop logs its last update's numbers until the next
            session["last_update_metrics"] = {str(k): float(v) for k, v in extras["last_update_metrics"].items()}
        info = folder.save_checkpoint(agent, name, step, session=session)
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
    verb = f"resuming at step {resume_step} from checkpoint '{resume.checkpoint.name}'" if resume is not None else "training"
    print(f"run {folder.run_id}: {verb} '{profile.agent_id}' on '{profile.env_id}' -> {folder.path}", flush=True)
    hooks = Hooks()
    stop = _StopOnce(hooks)
    previous_threads: int | None = None
    try:
        stop.install()
        seed_everything(profile.seed)
        hooks.callbacks = [*resolved.make_callbacks(), *callbacks]
        agent = _make_agent_with_initial_threads(resolved)
        # After the agent is built: orthogonal initialisation (a QR) rounds differently with
        # another thread count. Held until the run is saved (final evaluation included), then
        # given back, so that a Python caller's next run starts as this one did.
        previous_threads = apply_torch_threads(resolved.config)
        if resume is not None:
            load_checkpoint_into(agent, resume.checkpoint)
            set_global_rng_state(resume.session.get("rng") or {})
            progress.steps = progress.start_steps = resume.step
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
            backend=profile.backend,
            ray=_ray_options(resolved),
            env_recipe=partial(env_factory_for, profile, flatten_observations=resolved.flatten_observations),
            profile_dir=profile.base_dir,
            hooks=hooks,
            resolve=resolved.resolve,
            load_run=load_run,
            journal=journal,
            extras=extras,
        )
        progress.start()
        wrapper = resolved.spec.training_wrapper
        assert wrapper is not None
        args: list[Any] = [resolved.make_env, agent, resolved.config, artifacts, save_callback]
        if _accepts(wrapper, "context"):
            wrapper(*args, context=context)
        else:
            wrapper(*args)
        status = "interrupted" if hooks.interrupt is not None else "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        state["exact"] = False  # stopped mid-update: the agent and the envs may be out of step
    except Exception as exc:
        status = "failed"
        state["exact"] = False
        error = {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }
    finally:
        # From here on a signal never unwinds the save: the first one (when training had
        # completed) only cuts the final evaluation short, any other is noted and ignored.
        hooks.graceful = False
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
                save_callback(agent, artifacts, int(getattr(agent, "global_step", steps) or steps), name)
            except Exception as exc:  # saving must never lose the run record
                error = error or {"type": type(exc).__name__, "message": f"saving the agent failed: {exc}"}
                status = "failed"
        else:
            folder.write_artifacts(artifacts)
        logger.close()
        best, final = _returns_summary(artifacts, progress)
        extra = {"stop_reason": artifacts["stop_reason"]} if artifacts.get("stop_reason") else {}
        if artifacts.get("rollout"):  # remote collection: workers, restarts, dropped rounds
            extra["rollout"] = artifacts["rollout"]
        data = folder.finish(status, error=error, steps=steps, best_return=best, final_return=final, **extra)
        if _plots_wanted():
            _write_plots(folder.path)
        stop.restore()
        if previous_threads is not None:
            sys.modules["torch"].set_num_threads(previous_threads)
    duration = time.perf_counter() - started
    message = error["message"] if error else None
    line = f"run {folder.run_id}: {status} after {steps} steps in {duration:.1f}s"
    if artifacts.get("stop_reason"):
        line += f" (stopped early: {artifacts['stop_reason']})"
    if final is not None:
        line += f", final return {final:.2f}"
    if status == "interrupted":
        line += f" -- continue it with: daedalus resume {folder.path}"
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
    deterministic = bool(getattr(resolved.config, "eval_deterministic", True))
    seed = (resolved.profile.seed or 0) + 100_000
    try:
        result = evaluate_agent(resolved, agent, episodes, deterministic, seed)
    except Exception as exc:  # the trained agent is saved regardless; say what went wrong
        artifacts["final_evaluation_error"] = f"{type(exc).__name__}: {exc}"
        print(f"evaluation failed: {type(exc).__name__}: {exc}", flush=True)
        return
    entry = {**result.to_dict(), "checkpoint": "final", "evaluated_at": time.time()}
    artifacts["final_evaluation"] = entry
    folder.write_json("eval.json", {"latest": entry, "history": [entry]})
    print(f"evaluation: {result.format()}", flush=True)


def evaluate_agent(
    resolved: ResolvedProfile,
    agent: Any,
    n_episodes: int,
    deterministic: bool = True,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate ``agent`` on fresh copies of the profile's env (episode ``i`` seeded ``seed + i``).

    A single-agent profile gives an :class:`~daedalus.evaluation.EvalResult`; a multi-agent one a
    :class:`~daedalus.rollout.multiagent.MultiAgentEvaluation` (team return, per policy, per agent).
    Both have ``mean_return``, ``std_return``, ``format()`` and ``to_dict()``. ``overrides``
    (multi-agent) replaces some policies by other collection policies (cross-play).
    """
    if resolved.groups is not None:
        from types import SimpleNamespace

        from daedalus.algos.multi_policy import evaluation_policy
        from daedalus.rollout.multiagent import evaluate_policies

        policies = {name: evaluation_policy(policy) for name, policy in agent.policies.items()}
        policies.update(overrides or {})
        context = SimpleNamespace(make_env=resolved.make_env)
        return evaluate_policies(
            context, agent.groups, policies, n_episodes, deterministic, seed,
            one_hot=getattr(agent, "one_hot", ()), critics=getattr(agent, "critics", None),
        )
    from daedalus.evaluation import evaluate

    return evaluate(agent, resolved.make_env, n_episodes=n_episodes, deterministic=deterministic, seed=seed)


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


def _optional_sinks(run_dir: Path, resume_step: int | None = None) -> list[Any]:
    try:
        from daedalus.tracking.tensorboard import TensorBoardWriter
    except ImportError:  # pragma: no cover - shipped with the package
        return []
    writer = TensorBoardWriter(run_dir / "tb")
    if resume_step is not None:
        writer.purge_after(resume_step)
    return [writer]


def _plots_wanted() -> bool:
    """Whether a finished session draws ``plots/`` (``DAEDALUS_PLOTS=0`` turns it off)."""
    return os.environ.get("DAEDALUS_PLOTS", "1").strip().lower() not in ("0", "false", "no", "off")


_PLOTS_UNAVAILABLE: list[str] = []  # said once per process


def _write_plots(run_dir: Path) -> None:
    """The run's learning curves into ``<run>/plots/`` (a problem is one printed line, never a failed run)."""
    from daedalus.api.compare import write_run_plots
    from daedalus.errors import DaedalusError, MissingDependencyError

    try:
        write_run_plots(run_dir, smooth=10)
    except MissingDependencyError as exc:
        if not _PLOTS_UNAVAILABLE:
            _PLOTS_UNAVAILABLE.append(str(exc))
            print(f"plots: not drawn: {exc}", flush=True)
    except DaedalusError as exc:
        print(f"plots: not drawn: {exc}", flush=True)


def _live_mode() -> bool | None:
    mode = os.environ.get("DAEDALUS_PROGRESS", "").lower()
    return {"plain": False, "live": True}.get(mode)


def _make_agent_with_initial_threads(resolved: ResolvedProfile) -> Any:
    """``make_agent`` with torch's thread count as it was before Daedalus first changed it, so that a
    seed gives the same initial network whatever this process ran before (see
    :func:`daedalus.api.resolve.initial_torch_threads`)."""
    initial = initial_torch_threads()
    torch = sys.modules.get("torch")
    if initial is None or torch is None or torch.get_num_threads() == initial:
        return make_agent(resolved)
    ambient = torch.get_num_threads()
    torch.set_num_threads(initial)
    try:
        return make_agent(resolved)
    finally:
        torch.set_num_threads(ambient)


def _ray_options(resolved: ResolvedProfile) -> Any:
    """The profile's Ray rollout settings (``backend: ray``), refused for what cannot collect on Ray."""
    profile = resolved.profile
    if profile.backend != "ray":
        return None
    from daedalus.algos.dqn import DQNConfig
    from daedalus.algos.on_policy import OnPolicyConfig
    from daedalus.algos.sac import SACConfig
    from daedalus.algos.td3 import TD3Config
    from daedalus.rollout.ray_source import RayOptions

    if not isinstance(resolved.config, OnPolicyConfig | DQNConfig | SACConfig | TD3Config):
        raise ProfileError(
            f"profile '{profile.profile_id}': rollout.backend: ray collects whole rollouts on remote workers for the built-in "
            f"PPO, A2C, DQN, SAC and TD3; '{profile.agent_id}' steps its envs one step at a time in its own loop. Use "
            "rollout.backend: local or subprocess for it."
        )
    if resolved.groups is not None and not isinstance(resolved.config, OnPolicyConfig):
        raise ProfileError(
            f"profile '{profile.profile_id}': on multi-agent envs, rollout.backend: ray trains PPO and A2C; "
            f"'{profile.agent_id}' (independent learners sharing one replay buffer) needs rollout.backend: local or subprocess."
        )
    return RayOptions(**profile.ray)


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class _StopOnce:
    """SIGINT/SIGTERM while a run trains: stop cleanly, then harder, and never tear the save.

    The first signal, while a training loop that checks :attr:`Hooks.interrupt` runs (the
    built-in training schedule), asks it to stop after the current update: the run ends
    ``interrupted`` at a clean point and resumes exactly. A second signal (or the first, for
    loops that do not check) raises KeyboardInterrupt at once. Once ``stopping`` is true
    (the run is being saved), signals are only acknowledged. Installed by
    :func:`run_session` in the main thread only (signal handlers cannot be set elsewhere);
    :meth:`restore` puts the previous handlers back.
    """

    def __init__(self, hooks: Hooks | None = None) -> None:
        self.stopping = False
        self.hooks = hooks
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (a no-op outside the main thread)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopping:
            print("already stopping: the run is being saved, please wait", file=sys.stderr, flush=True)
            return
        hooks = self.hooks
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        if hooks is not None and hooks.graceful and hooks.interrupt is None:
            hooks.interrupt = name
            print(f"{name}: stopping after the current update (again to stop at once)", file=sys.stderr, flush=True)
            return
        self.stopping = True
        raise _Interrupted() if signum == signal.SIGTERM else KeyboardInterrupt()

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


# --------------------------------------------------------------------------- resume state


def text_digest(text: str) -> str:
    """sha256 of a text (UTF-8), hex."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def global_rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's global generator states, as JSON."""
    import random

    import numpy as np

    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, [int(k) for k in keys], int(position), int(has_gauss), float(cached)],
    }
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].get_rng_state().tolist()
    return out


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` saved (a malformed entry is a RunError)."""
    import random

    import numpy as np

    from daedalus.errors import RunError

    try:
        if "python" in state:
            version, internal, gauss = state["python"]
            random.setstate((int(version), tuple(int(k) for k in internal), gauss))
        if "numpy" in state:
            kind, keys, position, has_gauss, cached = state["numpy"]
            np.random.set_state((str(kind), np.asarray(keys, dtype=np.uint32), int(position), int(has_gauss), float(cached)))
        if "torch" in state:
            import torch

            torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise RunError(f"the checkpoint's random generator states are damaged ({exc}); resume from another checkpoint.") from None


def code_fingerprint(resolved: ResolvedProfile) -> dict[str, Any]:
    """What the run's code was: sha256 of every daedalus source file and of the user code the
    profile names (agent, env, wrappers, callbacks, loss), plus library versions."""
    import hashlib
    import inspect as inspect_

    from daedalus.api.resolve import code_references
    from daedalus.runs.store import versions

    files: dict[str, str] = {}
    package = Path(__file__).resolve().parents[1]  # src/daedalus
    for path in sorted(package.rglob("*.py")):
        files[f"daedalus/{path.relative_to(package).as_posix()}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    from daedalus.registry import TRUSTED_ENV_PACKAGES

    for key, ref in code_references(resolved.profile):
        if ref.partition(":")[0].split(".")[0] in TRUSTED_ENV_PACKAGES:
            continue  # an installed env package, like a Gymnasium id: its version is in "versions"
        try:
            source = inspect_.getsourcefile(resolved.resolve(ref))
        except Exception:  # noqa: BLE001 - a ref that is not plain Python code: nothing to hash
            continue
        if source and Path(source).is_file() and package not in Path(source).resolve().parents:
            files[f"{key}: {source}"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return {"files": files, "versions": versions()}


def write_code_fingerprint(run_dir: Path, resolved: ResolvedProfile) -> None:
    """``<run>/code.json``: :func:`code_fingerprint` (a resume compares against it)."""
    from daedalus.runs.io import atomic_write_json

    try:
        atomic_write_json(run_dir / "code.json", code_fingerprint(resolved))
    except OSError as exc:  # a resume then only warns that it cannot compare
        print(f"note: code.json not written ({exc})", file=sys.stderr, flush=True)


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
    final_eval = artifacts.get("final_evaluation")
    final_mean = final_eval.get("mean_return") if isinstance(final_eval, dict) else None
    mean = float(final_mean) if isinstance(final_mean, int | float) else progress.mean_return
    return (max(progress.recent_returns) if progress.recent_returns else None), mean


