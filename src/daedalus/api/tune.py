"""Hyperparameter search: ``daedalus tune FILE PROFILE`` over the profile's ``tune:`` section, with Optuna.

One **trial** draws a value for every key of the search space (Optuna's TPE sampler, seeded),
trains the profile with them once per seed (seed ``i`` is the profile's seed + ``i``) and is
scored by the mean, or the interquartile mean, of its runs' values. A run's value is its final
evaluation's mean return, else its last periodic evaluation's (:func:`run_value`).

Every periodic evaluation of a trial's runs is reported to the pruner by an ``on_eval`` hook
(:class:`ReportToPruner`); when the pruner says so the run stops, ends ``completed`` with a
``stop_reason`` naming the pruning, and the trial's remaining seeds are not trained.

The study is kept in SQLite, so running the command again resumes it: trials are added until the
study holds ``trials`` finished (completed or pruned) ones. With ``parallel`` > 1, worker
processes (``spawn``) each take trials of the same study through that database.

Each run is an ordinary run in ``runs_dir`` with profile id ``<profile>-t<trial>`` and batch id
``tune-<study>``, so ``daedalus runs compare --batch tune-<study>`` lists one row per trial. At
the end the best trial is written as a plain profile (no ``tune:``, seed = the trial's first
seed) that ``daedalus train`` reproduces. Optuna is imported only here, only when called.

With ``backend="ray"`` the driver keeps the study and asks Optuna for trials (ask/tell) while
at most ``parallel_trials`` of them train as Ray tasks on any node of the cluster, each
returning its run folders as archives (:mod:`daedalus.api.ray_batch`); a trial whose worker
died is run once more, then failed. Nothing reports intermediate values, so nothing is pruned.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.api.resolve import ResolvedProfile, load, validate
from daedalus.api.session import DEFAULT_RUNS_DIR, RunResult, train_resolved
from daedalus.config import Profile, TuneParam, check_search_space
from daedalus.errors import DaedalusError, MissingDependencyError, ProfileError
from daedalus.hooks import EvalEnd

__all__ = [
    "BACKENDS",
    "OBJECTIVES",
    "PRUNERS",
    "ReportToPruner",
    "TrialSummary",
    "TuneResult",
    "aggregate",
    "run_value",
    "suggest",
    "trial_profile",
    "tune",
]

#: ``--pruner``: Optuna's MedianPruner, SuccessiveHalvingPruner, or no pruning.
PRUNERS = ("median", "halving", "none")
#: ``--objective``: how a trial's per-seed values become its score.
OBJECTIVES = ("mean", "iqm")
#: ``--backend``: trials in this machine's processes, or as Ray tasks on a cluster.
BACKENDS = ("local", "ray")
#: Trial states as the table shows them.
_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


# --------------------------------------------------------------------------- results


@dataclass
class TrialSummary:
    """One trial of a study, as stored in its database."""

    number: int
    #: complete, pruned, failed, interrupted (Ctrl-C, SIGTERM), running or waiting.
    state: str
    #: The objective (completed trials only).
    value: float | None
    #: The values drawn: config field (or ``num_envs``) -> value.
    values: dict[str, Any]
    #: The value of each seed's run that finished (see :func:`run_value`).
    seed_values: list[float] = field(default_factory=list)
    #: The trial's runs (run ids), one per seed started.
    run_ids: list[str] = field(default_factory=list)
    #: Why the trial was pruned or failed.
    note: str = ""


@dataclass
class TuneResult:
    """The outcome of :func:`tune`: every trial of the study and where the best profile went."""

    study_name: str
    storage: Path
    profile_id: str
    batch_id: str
    objective: str
    seeds: list[int]
    trials: list[TrialSummary]
    #: Trials this call started.
    ran: int = 0
    #: The best trial as a ready profile (None while no trial has completed).
    best_profile: Path | None = None
    #: True when Ctrl-C or SIGTERM stopped the search.
    interrupted: bool = False
    #: Problems that did not stop the search (a worker process that died).
    problems: list[str] = field(default_factory=list)

    @property
    def best(self) -> TrialSummary | None:
        """The completed trial with the highest objective (the lowest number among ties)."""
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return max(done, key=lambda t: (t.value, -t.number)) if done else None

    def counts(self) -> dict[str, int]:
        """Trials per state."""
        out: dict[str, int] = {}
        for trial in self.trials:
            out[trial.state] = out.get(trial.state, 0) + 1
        return out

    def trial_profile_id(self, trial: TrialSummary) -> str:
        """The profile id the trial's runs carry: ``<profile>-t<trial>``."""
        return f"{self.profile_id}-t{trial.number}"

    def table(self, top: int = 5) -> tuple[list[str], list[list[str]]]:
        """Headers and rows of the ``top`` best completed trials, best first."""
        done = sorted(
            (t for t in self.trials if t.state == "complete" and t.value is not None),
            key=lambda t: (-(t.value or 0.0), t.number),
        )
        headers = ["trial", self.objective, "± std", "per seed", "values", "runs (profile id)"]
        rows = []
        for trial in done[:top]:
            spread = _std(trial.seed_values)
            rows.append([
                str(trial.number),
                f"{trial.value:.2f}",
                "-" if spread is None else f"{spread:.2f}",
                " ".join(f"{v:.1f}" for v in trial.seed_values),
                ", ".join(f"{k}={_short(v)}" for k, v in trial.values.items()),
                self.trial_profile_id(trial),
            ])
        return headers, rows


# --------------------------------------------------------------------------- pieces


def run_value(result: RunResult) -> float | None:
    """A run's value for the objective: the final evaluation's mean return, else the last periodic one's.

    None when the run recorded no evaluation (``final_eval_episodes`` and ``eval_every_steps``
    both 0, or a custom agent that evaluates nothing).
    """
    final = result.artifacts.get("final_evaluation")
    if isinstance(final, dict) and final.get("mean_return") is not None:
        return float(final["mean_return"])
    evaluations = result.artifacts.get("evaluations")
    if isinstance(evaluations, list):
        for entry in reversed(evaluations):
            if isinstance(entry, dict) and entry.get("mean_return") is not None:
                return float(entry["mean_return"])
    return None


def aggregate(values: Sequence[float], objective: str = "mean") -> float:
    """The trial's score from its per-seed values: their mean, or interquartile mean.

    The IQM drops the lowest and the highest quarter (``floor(n / 4)`` values each side,
    as ``scipy.stats.trim_mean(values, 0.25)``) and averages the rest; below 4 seeds it is
    the mean.
    """
    if not values:
        raise ValueError("no values to aggregate")
    if objective == "iqm":
        ordered = sorted(values)
        cut = len(ordered) // 4
        values = ordered[cut : len(ordered) - cut]
    return float(sum(values) / len(values))


def suggest(trial: Any, space: Sequence[TuneParam]) -> dict[str, Any]:
    """Draw one value per search-space entry from an Optuna trial: name -> value.

    A choice whose values include lists (``hidden_sizes: {choice: [[64, 64], [128]]}``) is
    drawn among their JSON texts, since Optuna's choices are scalars; the value returned is
    the list.
    """
    values: dict[str, Any] = {}
    for param in space:
        if param.distribution == "choice":
            choices = list(param.choices)
            if all(c is None or isinstance(c, str | int | float | bool) for c in choices):
                values[param.name] = trial.suggest_categorical(param.name, choices)
            else:
                labels = [json.dumps(c) for c in choices]
                values[param.name] = copy.deepcopy(choices[labels.index(trial.suggest_categorical(param.name, labels))])
        elif param.distribution == "int":
            assert param.low is not None and param.high is not None
            values[param.name] = trial.suggest_int(param.name, int(param.low), int(param.high), step=param.step or 1, log=param.log)
        else:
            assert param.low is not None and param.high is not None
            values[param.name] = trial.suggest_float(param.name, float(param.low), float(param.high), log=param.distribution == "loguniform")
    return values


def trial_profile(profile: Profile, values: Mapping[str, Any], profile_id: str, seed: int | None) -> Profile:
    """``profile`` with the drawn ``values`` filled in, a new id and seed, and no ``tune:`` section.

    A value that makes the profile invalid is reported as if given with ``--set KEY=VALUE``.
    """
    config = copy.deepcopy(profile.config)
    num_envs = profile.num_envs
    overridden = dict(profile.overridden)
    for param in profile.search_space():
        if param.name not in values:
            continue
        value = copy.deepcopy(values[param.name])
        if param.in_config:
            config[param.name] = value
            overridden[("config", param.name)] = f"{param.key}={json.dumps(value)} (drawn by tune)"
        else:
            num_envs = value
            overridden[(param.name,)] = f"{param.key}={json.dumps(value)} (drawn by tune)"
    return dataclasses.replace(
        profile, profile_id=profile_id, config=config, num_envs=num_envs, seed=seed, tune={}, overridden=overridden
    )


class ReportToPruner:
    """``on_eval`` hook: each periodic evaluation is an intermediate value of an Optuna trial.

    Steps count the trial's evaluations (0, 1, 2, ... continuing over its seeds' runs in
    order), so trials compare at the same evaluation even when their rollouts end at
    different env steps. When the pruner says the trial should stop, the hook returns a
    reason, which ends the run ``completed`` with that ``stop_reason``; :attr:`reason` is set.
    """

    def __init__(self, trial: Any, pruner: str) -> None:
        self.trial = trial
        self.pruner = pruner
        self.evaluations = 0
        self.reason: str | None = None
        #: The seed of the run being trained (for the stop reason).
        self.seed: int | None = None

    def on_eval(self, info: EvalEnd) -> str | None:
        """Report the evaluation; a reason to stop when the trial is pruned."""
        step = self.evaluations
        self.evaluations += 1
        self.trial.report(float(info.mean_return), step)
        if self.reason is None and self.trial.should_prune():
            self.reason = (
                f"pruned by optuna ({self.pruner} pruner) at evaluation {step + 1} of trial {self.trial.number} "
                f"(seed {self.seed}, step {info.step}, mean return {info.mean_return:.2f})"
            )
        return self.reason


# --------------------------------------------------------------------------- the search


def tune(
    path: str | Path,
    profile_id: str | None = None,
    *,
    trials: int,
    seeds: int = 1,
    parallel: int = 1,
    pruner: str | None = None,
    objective: str = "mean",
    study: str | None = None,
    storage: str | Path | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    overrides: Sequence[str] = (),
    backend: str = "local",
    address: str | None = None,
    cpus_per_trial: float = 1,
    parallel_trials: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> TuneResult:
    """Search the ``tune:`` space of a profile with Optuna; returns every trial and the best profile.

    ``trials`` is the number of finished (completed or pruned) trials the study should hold:
    a new study runs that many, a resumed one only those still missing (failed and interrupted
    trials do not count). ``seeds`` runs per trial (seeds ``seed`` .. ``seed + seeds - 1``),
    scored by their mean or ``objective="iqm"``. ``parallel`` worker processes share the study.
    The study ``study`` (default: the profile id) is kept in the SQLite file ``storage``
    (default ``<runs_dir>/tune/<profile>.db``); the best trial is written as a profile to
    ``output`` (default ``<runs_dir>/tune/<study>-best.yaml``). Needs ``daedalus[tune]``.
    ``pruner``: ``median`` (the default), ``halving`` or ``none``.

    ``backend="ray"`` trains each trial as one Ray task asking for ``cpus_per_trial`` CPUs
    (plus the custom Ray ``resources``, e.g. ``{"gpu_node": 1}``) on the cluster at
    ``address`` (or ``$RAY_ADDRESS``, or one already initialized in this process, or a local
    Ray); at most ``parallel_trials`` at once (default: as many as the cluster has room for).
    Its run folders come back into ``runs_dir``. Nothing is pruned (``pruner`` must be left
    out or ``"none"``), and ``parallel`` is for the local backend. Needs ``daedalus[ray]`` too.
    """
    optuna = _import_optuna()
    _check_arguments(trials, seeds, parallel, pruner, objective)
    _check_backend(backend, parallel, pruner, address, cpus_per_trial, parallel_trials, resources)
    if backend == "ray":
        from daedalus.api.ray_batch import import_ray

        import_ray()  # before any profile is loaded: a missing Ray is one clear message
    pruner = pruner or ("none" if backend == "ray" else "median")
    found = load(path, [profile_id] if profile_id else None, overrides)
    if len(found) != 1:
        ids = ", ".join(r.profile.profile_id for r in found)
        raise ProfileError(f"{path} holds several profiles ({ids}); name the one to tune: daedalus tune {path} PROFILE.")
    resolved = found[0]
    check_tunable(resolved)
    profile = resolved.profile
    runs_dir = Path(runs_dir)
    study_name = study or profile.profile_id
    storage_path = Path(storage) if storage is not None else runs_dir / "tune" / f"{profile.profile_id}.db"
    output_path = Path(output) if output is not None else runs_dir / "tune" / f"{study_name}-best.yaml"
    storage_path.parent.mkdir(parents=True, exist_ok=True)
    base_seed = profile.seed if profile.seed is not None else 0
    seed_list = [base_seed + i for i in range(seeds)]
    job = _Job(
        profile=profile,
        storage_url=f"sqlite:///{storage_path.resolve()}",
        study_name=study_name,
        batch_id=f"tune-{study_name}",
        runs_dir=runs_dir.resolve(),
        seeds=seed_list,
        pruner=pruner,
        objective=objective,
        to_run=0,
        project_dir=Path.cwd(),
    )
    with _quiet_optuna(optuna):
        handle = optuna.create_study(
            storage=_storage(optuna, job.storage_url), study_name=study_name, direction="maximize", load_if_exists=True
        )
        _check_setup(handle, _setup(resolved, seed_list, objective), study_name, storage_path)
        finished = sum(1 for t in handle.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED"))
    job.to_run = max(trials - finished, 0)
    workers = min(parallel, job.to_run)
    interrupted = False
    problems: list[str] = []

    def announce(how: str) -> None:
        print(
            f"study '{study_name}' in {storage_path}: {finished} finished trial(s); running {job.to_run} more "
            f"({len(seed_list)} seed(s) each, {how}); runs in {runs_dir}, batch {job.batch_id}",
            flush=True,
        )

    if job.to_run and backend == "ray":
        ray_options = _RayOptions(Path(path), resolved, tuple(overrides), address, cpus_per_trial, parallel_trials, dict(resources or {}))
        interrupted = _tune_on_ray(job, ray_options, announce)
    elif job.to_run:
        announce(f"{workers} at a time")
        try:
            if workers <= 1:
                _work(job, 0, _Counter())
            else:
                problems = _run_workers(job, workers)
        except KeyboardInterrupt:
            interrupted = True
    else:
        print(f"study '{study_name}' in {storage_path} already holds {finished} finished trial(s); "
              f"ask for more with --trials N > {finished}", flush=True)
    with _quiet_optuna(optuna):
        frozen = optuna.load_study(study_name=study_name, storage=_storage(optuna, job.storage_url)).get_trials(deepcopy=False)
    summaries = [_summary(t) for t in frozen]
    result = TuneResult(
        study_name, storage_path, profile.profile_id, job.batch_id, objective, seed_list, summaries,
        ran=job.to_run, interrupted=interrupted, problems=problems,
    )
    best = result.best
    if best is not None:
        result.best_profile = write_best_profile(result, best, profile, output_path)
    return result


def check_tunable(resolved: ResolvedProfile) -> list[TuneParam]:
    """Refuse a profile that cannot be tuned: no ``tune:`` section, keys the agent does not take, no evaluation.

    Returns the search space. Every problem is a ProfileError naming the line and the fix.
    """
    profile = resolved.profile
    space = profile.search_space()
    if not space:
        raise profile.fail(
            (), "has no 'tune:' section, so there is nothing to search",
            "Add one, e.g. 'tune: {learning_rate: {loguniform: [1.0e-5, 1.0e-2]}, num_steps: {choice: [32, 64, 128]}}' "
            "(docs/tuning.md).",
        )
    check_search_space(profile, resolved.spec.config_class, resolved.spec.default_config)
    config = resolved.config
    if resolved.spec.config_class is not None:
        final = getattr(config, "final_eval_episodes", 0)
        periodic = getattr(config, "eval_every_steps", 0)
        if not (isinstance(final, int) and final > 0) and not (isinstance(periodic, int) and periodic > 0):
            raise profile.fail(
                ("config",), "evaluates nothing (final_eval_episodes and eval_every_steps are 0), so a trial has no score",
                "Set config.final_eval_episodes (e.g. 20) for the score, and config.eval_every_steps for pruning.",
            )
    return space


def write_best_profile(result: TuneResult, best: TrialSummary, profile: Profile, path: Path) -> Path:
    """Write ``best`` as a profile ``daedalus train`` reproduces: values filled in, first seed, no ``tune:``.

    The profile id is ``<profile>-best``; every default is written out (the resolved profile,
    as in a run's ``profile.yaml``), so that later changes of a default do not change it.
    """
    import yaml

    from daedalus.runs.io import atomic_write_text

    candidate = trial_profile(profile, best.values, f"{profile.profile_id}-best", result.seeds[0])
    candidate.description = (
        f"best trial {best.number} of study '{result.study_name}' ({result.objective} {best.value:.2f} over "
        f"seeds {', '.join(map(str, result.seeds[: len(best.seed_values)]))}); runs: {result.trial_profile_id(best)}"
    )
    data = validate(candidate).resolved_dict()
    values = ", ".join(f"{k}={_short(v)}" for k, v in best.values.items())
    per_seed = ", ".join(f"seed {s}: {v:.2f}" for s, v in zip(result.seeds, best.seed_values, strict=False))
    header = (
        f"# Written by daedalus tune: the best trial ({best.number}) of study '{result.study_name}' in {result.storage}.\n"
        f"# Tuned: {values}.\n"
        f"# {result.objective} {best.value:.2f} ({per_seed}). This profile trains seed {result.seeds[0]}:\n"
        f"#   daedalus train {path}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, header + yaml.safe_dump({candidate.profile_id: data}, sort_keys=False))
    return path


# --------------------------------------------------------------------------- workers


@dataclass
class _Job:
    """What a worker needs to run trials of the study (plain data: it crosses to spawned processes)."""

    profile: Profile
    storage_url: str
    study_name: str
    batch_id: str
    runs_dir: Path
    seeds: list[int]
    pruner: str
    objective: str
    to_run: int
    project_dir: Path


class _Counter:
    """Trials claimed so far, in this process (a ``multiprocessing.Value`` plays it across processes)."""

    def __init__(self) -> None:
        self.value = 0

    @contextmanager
    def get_lock(self) -> Iterator[None]:
        yield


class _TrialFailed(Exception):
    """A trial could not be scored (invalid drawn values, a failed run); the study goes on."""


def _claim(job: _Job, counter: Any) -> bool:
    with counter.get_lock():
        if counter.value >= job.to_run:
            return False
        counter.value += 1
        return True


def _run_workers(job: _Job, workers: int) -> list[str]:
    """Start ``workers`` spawned processes that share the trials to run; wait for them."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    processes = [context.Process(target=_worker_main, args=(job, i, counter), name=f"daedalus-tune-{i}") for i in range(workers)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        with counter.get_lock():
            counter.value = job.to_run  # no new trials
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join()
        raise
    codes = [process.exitcode for process in processes]
    if 130 in codes:
        raise KeyboardInterrupt
    return [f"tune worker {i} exited with code {code} (its error is printed above)" for i, code in enumerate(codes) if code]


def _worker_main(job: _Job, worker: int, counter: Any) -> None:
    """A spawned worker: load the project's modules, then run trials until none is left."""
    os.environ["DAEDALUS_PROGRESS"] = "plain"
    from daedalus.registry import load_project_modules

    try:
        load_project_modules(job.project_dir)
        _work(job, worker, counter)
    except KeyboardInterrupt:
        sys.exit(130)


def _work(job: _Job, worker: int, counter: Any) -> None:
    """Run trials of the study one at a time while the shared counter has some left."""
    optuna = _import_optuna()
    with _quiet_optuna(optuna):
        study = _load_study(optuna, job, _storage(optuna, job.storage_url), worker, not isinstance(counter, _Counter))
        objective = _Objective(job, optuna)
        while _claim(job, counter):
            study.optimize(objective, n_trials=1, catch=(_TrialFailed,), callbacks=[_print_trial])


def _load_study(optuna: Any, job: _Job, storage: Any, worker: int, concurrent: bool) -> Any:
    """The study with this worker's seeded TPE sampler (and *constant liar* when trials run ``concurrent``ly)."""
    started = len(optuna.load_study(study_name=job.study_name, storage=storage).get_trials(deepcopy=False))
    sampler_options: dict[str, Any] = {"seed": (job.seeds[0] * 1_000_003 + started * 1_009 + worker) % 2**32}
    if concurrent:
        sampler_options["constant_liar"] = True  # don't all draw next to the same running trial
    return optuna.load_study(
        study_name=job.study_name, storage=storage,
        sampler=optuna.samplers.TPESampler(**sampler_options), pruner=_pruner(optuna, job.pruner),
    )


class _Objective:
    """One trial: draw values, train one run per seed (pruning on evaluations), return the score."""

    def __init__(self, job: _Job, optuna: Any) -> None:
        self.job = job
        self.optuna = optuna
        self.space = job.profile.search_space()

    def __call__(self, trial: Any) -> float:
        job = self.job
        values = suggest(trial, self.space)
        trial.set_user_attr("values", values)
        profile_id = f"{job.profile.profile_id}-t{trial.number}"
        hook = ReportToPruner(trial, job.pruner)
        run_ids: list[str] = []
        seed_values: list[float] = []
        for seed in job.seeds:
            try:
                resolved = validate(trial_profile(job.profile, values, profile_id, seed))
            except ProfileError as exc:
                raise _fail(trial, f"the values drawn do not make a valid profile: {exc}") from None
            hook.seed = seed
            result = train_resolved(resolved, runs_dir=job.runs_dir, batch_id=job.batch_id, callbacks=[hook])
            run_ids.append(result.run_id)
            trial.set_user_attr("run_ids", run_ids)
            if result.status == "interrupted":
                trial.set_user_attr("note", f"interrupted (Ctrl-C or SIGTERM) in run {result.run_id}")
                trial.set_user_attr("interrupted", True)
                raise KeyboardInterrupt
            _check_completed(trial, result)
            if hook.reason is not None:
                trial.set_user_attr("note", hook.reason)
                raise self.optuna.TrialPruned(hook.reason)
            _add_value(trial, result, seed_values)
        return aggregate(seed_values, job.objective)


def _fail(trial: Any, reason: str) -> _TrialFailed:
    """Record why the trial failed; the exception to raise."""
    trial.set_user_attr("note", reason)
    return _TrialFailed(reason)


def _check_completed(trial: Any, result: RunResult) -> None:
    if result.status != "completed":
        raise _fail(trial, f"run {result.run_id} {result.status}: {result.error}")


def _add_value(trial: Any, result: RunResult, seed_values: list[float]) -> None:
    """Add the value of a completed run to the trial's (a _TrialFailed when it has none)."""
    value = run_value(result)
    if value is None or not math.isfinite(value):
        raise _fail(trial, f"run {result.run_id} recorded no evaluation to score (set config.final_eval_episodes)")
    seed_values.append(value)
    trial.set_user_attr("seed_values", seed_values)


def _print_trial(study: Any, frozen: Any) -> None:
    summary = _summary(frozen)
    values = ", ".join(f"{k}={_short(v)}" for k, v in summary.values.items())
    if summary.state == "complete":
        outcome = f"{summary.value:.2f} (per seed: {' '.join(f'{v:.1f}' for v in summary.seed_values)})"
    else:
        outcome = summary.note or "no reason recorded"
    print(f"trial {summary.number} {summary.state}: {outcome}; {values}", flush=True)


# --------------------------------------------------------------------------- on Ray


@dataclass
class _RayOptions:
    """Where and how ``backend="ray"`` runs its trials."""

    path: Path
    resolved: ResolvedProfile
    overrides: tuple[str, ...]
    address: str | None
    cpus_per_trial: float
    parallel_trials: int | None
    resources: dict[str, float]


def _check_backend(
    backend: str, parallel: int, pruner: str | None, address: str | None, cpus_per_trial: float,
    parallel_trials: int | None, resources: Mapping[str, float] | None,
) -> None:
    if backend not in BACKENDS:
        raise DaedalusError(f"unknown tune backend '{backend}'. Use one of: {', '.join(BACKENDS)}.")
    if backend == "local":
        if address is not None:
            raise DaedalusError("--address is for --backend ray. Add --backend ray to run the trials on that Ray cluster.")
        if parallel_trials is not None:
            raise DaedalusError("--parallel-trials is for --backend ray. Locally, --parallel N runs N trials at once.")
        if cpus_per_trial != 1 or resources:
            raise DaedalusError("--cpus-per-trial (and Ray resources) are for --backend ray. Add --backend ray, or leave them out.")
        return
    if parallel != 1:
        raise DaedalusError(
            "--parallel is for --backend local (worker processes on this machine). With --backend ray every "
            "trial is a Ray task: --parallel-trials K runs K at once (default: as many as the cluster has CPUs for)."
        )
    if pruner not in (None, "none"):
        raise DaedalusError(
            f"--pruner {pruner} is not available with --backend ray: a trial's periodic evaluations stay on its "
            "node, so nothing can stop it early. Leave --pruner out (or pass --pruner none), or tune with "
            "--backend local to prune."
        )
    if isinstance(cpus_per_trial, bool) or not isinstance(cpus_per_trial, int | float) or not cpus_per_trial > 0:
        raise DaedalusError(f"--cpus-per-trial must be a number > 0, got {cpus_per_trial!r}.")
    if parallel_trials is not None and (isinstance(parallel_trials, bool) or not isinstance(parallel_trials, int) or parallel_trials < 1):
        raise DaedalusError(f"--parallel-trials must be an integer >= 1, got {parallel_trials!r}.")


def _tune_on_ray(job: _Job, options: _RayOptions, announce: Any) -> bool:
    """Run ``job.to_run`` trials as Ray tasks, at most ``parallel_trials`` at once; True when interrupted.

    The driver holds the study: ``study.ask()`` draws a trial when a slot is free, the trial's
    values are checked here (an invalid draw fails without a task), its task trains the
    trial's seeds on a node and returns their run folders, which are unpacked into the runs
    folder; ``study.tell()`` records the score exactly as the local objective computes it.
    """
    from daedalus.api import ray_batch

    optuna = _import_optuna()
    ray = ray_batch.import_ray()
    owned = ray_batch.connect(ray, options.address)
    try:
        width = min(options.parallel_trials or _room(ray, options.cpus_per_trial, options.resources), job.to_run)
        announce(f"{width} at a time as Ray tasks of {options.cpus_per_trial:g} CPU(s)")
        return _ray_trials(optuna, ray, ray_batch, job, options, width)
    finally:
        if owned:
            ray.shutdown()


def _room(ray: Any, cpus_per_trial: float, resources: Mapping[str, float]) -> int:
    """How many trial tasks the cluster holds at once: its CPUs (and custom resources) over each task's ask."""
    total = ray.cluster_resources()
    fits = [total.get("CPU", 0.0) / cpus_per_trial]
    fits += [total.get(name, 0.0) / amount for name, amount in resources.items() if amount > 0]
    return max(1, int(min(fits) + 1e-9))


def _ray_trials(optuna: Any, ray: Any, ray_batch: Any, job: _Job, options: _RayOptions, width: int) -> bool:
    import warnings

    space = job.profile.search_space()
    # A fresh prefix per call: the node temp folders of this call's tasks (study names may hold any character).
    prefix = f"{ray_batch.TEMP_PREFIX}tune-{uuid.uuid4().hex[:8]}-"
    base = ray_batch.task_payload(options.path, options.resolved, 0, options.overrides, job.batch_id)
    pool = ray_batch.TaskPool(ray, _trial_task, num_cpus=options.cpus_per_trial, resources=options.resources, label=lambda n: f"trial {n}")
    running: dict[int, Any] = {}
    launched = 0
    interrupted = False
    beat = time.monotonic()
    with _quiet_optuna(optuna), warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for optimize(); this loop records them itself.
        warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
        storage = _storage(optuna, job.storage_url)
        study = _load_study(optuna, job, storage, 0, width > 1)
        optuna.storages.fail_stale_trials(study)  # as a local worker does before each trial
        try:
            while launched < job.to_run or pool.pending:
                while launched < job.to_run and len(pool.pending) < width:
                    launched += 1
                    trial = study.ask()
                    running[trial.number] = trial
                    storage.record_heartbeat(trial._trial_id)  # Optuna's own optimize() uses this id too
                    values = suggest(trial, space)
                    trial.set_user_attr("values", values)
                    try:
                        validate(trial_profile(job.profile, values, f"{job.profile.profile_id}-t{trial.number}", job.seeds[0]))
                    except ProfileError as exc:
                        _fail(trial, f"the values drawn do not make a valid profile: {exc}")
                        _print_trial(study, study.tell(running.pop(trial.number), state=optuna.trial.TrialState.FAIL))
                        continue
                    pool.submit(trial.number, {
                        **base, "index": trial.number, "temp_prefix": f"{prefix}{trial.number}-",
                        "values": values, "trial_profile_id": f"{job.profile.profile_id}-t{trial.number}", "seeds": job.seeds,
                    })
                for done in pool.wait(timeout=1.0):
                    trial = running.pop(int(done.key))
                    try:
                        value = _ray_trial_value(trial, done, job, ray_batch)
                    except _TrialFailed:
                        frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    else:
                        frozen = study.tell(trial, value)
                    _print_trial(study, frozen)
                if time.monotonic() - beat > (storage.get_heartbeat_interval() or 30):
                    # Ask/tell has no heartbeat thread: beat for the running trials, so that a killed
                    # driver's trials are failed later as a killed local worker's are.
                    beat = time.monotonic()
                    for trial in running.values():
                        storage.record_heartbeat(trial._trial_id)
        except KeyboardInterrupt:
            interrupted = True
            pool.cancel()
            for trial in running.values():  # submitted, or drawn and not yet submitted
                trial.set_user_attr("note", "interrupted (Ctrl-C or SIGTERM) before its run folders came back")
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if pool.deaths:
        ray_batch.clean_nodes(ray, prefix)
    return interrupted


def _ray_trial_value(trial: Any, done: Any, job: _Job, ray_batch: Any) -> float:
    """Bring a trial task's run folders back and score them as :class:`_Objective` does."""
    if done.outcome is None:
        raise _fail(trial, done.error)
    outcome = done.outcome
    ids = trial_profile(job.profile, {}, f"{job.profile.profile_id}-t{trial.number}", None)  # the runs' profile id
    results = []
    for entry in outcome.get("runs") or []:
        if entry.get("archive") is None:
            break
        results.append(ray_batch.bring_back({**outcome, **entry}, ids, job.runs_dir, done.deaths))
    run_ids = [r.run_id for r in results if r.run_id != "-"]
    trial.set_user_attr("run_ids", run_ids)
    seed_values: list[float] = []
    for result in results:
        if result.run_id == "-":  # trained, but its folder could not be unpacked
            raise _fail(trial, str(result.error))
        _check_completed(trial, result)
        _add_value(trial, result, seed_values)
    if len(seed_values) < len(job.seeds):
        raise _fail(trial, f"its Ray task failed: {outcome.get('error') or 'it returned no run folder'}")
    return aggregate(seed_values, job.objective)


def _trial_task(payload: dict[str, Any]) -> dict[str, Any]:
    """One trial on a Ray node: its seeds' runs, in order, each packed as an archive.

    Stops at the first run that does not complete, as the local objective does. Returns
    :func:`daedalus.api.ray_batch.run_on_node`'s outcome with ``runs``: one
    ``{"run_id", "status", "error", "archive"}`` per run trained.
    """
    from daedalus.api.ray_batch import pack_run, run_on_node

    def train(item: ResolvedProfile, runs_dir: Path, out: dict[str, Any]) -> None:
        runs: list[dict[str, Any]] = []
        out["runs"] = runs
        for seed in payload["seeds"]:
            resolved = validate(trial_profile(item.profile, payload["values"], payload["trial_profile_id"], seed))
            result = train_resolved(resolved, runs_dir=runs_dir, batch_id=payload["batch_id"])
            entry: dict[str, Any] = {"run_id": result.run_id, "status": result.status, "error": result.error}
            runs.append(entry)
            entry["archive"] = pack_run(result.path)
            if result.status != "completed":
                break

    return run_on_node(payload, payload["temp_prefix"], train)


# --------------------------------------------------------------------------- helpers


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("optuna", "tune", "daedalus tune") from None
    return optuna


def _check_arguments(trials: int, seeds: int, parallel: int, pruner: str | None, objective: str) -> None:
    for name, value in (("trials", trials), ("seeds", seeds), ("parallel", parallel)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DaedalusError(f"--{name} must be an integer >= 1, got {value!r}.")
    if pruner is not None and pruner not in PRUNERS:
        raise DaedalusError(f"unknown pruner '{pruner}'. Use one of: {', '.join(PRUNERS)}.")
    if objective not in OBJECTIVES:
        raise DaedalusError(f"unknown objective '{objective}'. Use one of: {', '.join(OBJECTIVES)}.")


def _storage(optuna: Any, url: str) -> Any:
    # A long SQLite timeout: workers write to one file. The heartbeat lets a resumed study
    # mark the trials of a killed process as failed instead of running forever.
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}, heartbeat_interval=30, grace_period=120)


def _pruner(optuna: Any, name: str) -> Any:
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


@contextmanager
def _quiet_optuna(optuna: Any) -> Iterator[None]:
    """Optuna's own INFO/WARNING lines off (each trial gets one line of ours); put back after."""
    import warnings

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(previous)


def _setup(resolved: ResolvedProfile, seeds: list[int], objective: str) -> dict[str, Any]:
    """What makes trials comparable: the base profile, the search space, the seeds and the objective."""
    profile = resolved.resolved_dict()
    profile.pop("description", None)
    tune = profile.pop("tune", {})
    setup = {"profile_id": resolved.profile.profile_id, "profile": profile, "tune": tune, "seeds": seeds, "objective": objective}
    return dict(json.loads(json.dumps(setup)))


def _check_setup(study: Any, setup: dict[str, Any], name: str, storage: Path) -> None:
    """Refuse to resume a study whose trials were scored with another profile, space, seeds or objective."""
    stored = study.user_attrs.get("daedalus")
    if stored is None:
        study.set_user_attr("daedalus", setup)
        return
    changed = []
    for key in setup:
        old, new = stored.get(key), setup[key]
        if old == new:
            continue
        if key == "profile":
            old, new = old or {}, new or {}
            detail = [k for k in sorted({*old, *new} - {"config"}) if old.get(k) != new.get(k)]
            old_config, new_config = old.get("config") or {}, new.get("config") or {}
            detail += [f"config.{k}" for k in sorted({*old_config, *new_config}) if old_config.get(k) != new_config.get(k)]
            changed.append(f"profile values ({', '.join(detail)})")
        elif key == "tune":
            changed.append("search space (tune:)")
        else:
            changed.append(f"{key.replace('_', ' ')} ({json.dumps(old)} then, {json.dumps(new)} now)")
    if changed:
        raise DaedalusError(
            f"study '{name}' in {storage} was run with different {'; '.join(changed)}, so its trials' scores "
            "would not compare with new ones. Resume it with the same profile, search space, --seeds and "
            "--objective, or start another study with --study NEW_NAME (or another --storage)."
        )


def _summary(frozen: Any) -> TrialSummary:
    attrs = frozen.user_attrs
    values = attrs.get("values")
    state = _STATES.get(frozen.state.name, frozen.state.name.lower())
    note = str(attrs.get("note", ""))
    if state == "failed" and attrs.get("interrupted"):
        state = "interrupted"
    elif state == "failed" and not note:
        note = "no reason recorded: the process running it stopped (killed?)"
    return TrialSummary(
        number=frozen.number,
        state=state,
        value=frozen.value if frozen.state.name == "COMPLETE" else None,
        values=dict(values) if isinstance(values, dict) else dict(frozen.params),
        seed_values=[float(v) for v in attrs.get("seed_values", [])],
        run_ids=list(attrs.get("run_ids", [])),
        note=note,
    )


def _std(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)

