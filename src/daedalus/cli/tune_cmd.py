"""``daedalus tune``: search a profile's ``tune:`` space with Optuna (one call into :func:`daedalus.api.tune.tune`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from daedalus import api
from daedalus.api.tune import BACKENDS, OBJECTIVES, PRUNERS, TuneResult, tune


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to ``app``."""
    app.command("tune")(tune_command)


def tune_command(
    file: Annotated[Path, typer.Argument(help="Profile file (YAML).", metavar="FILE")],
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, help="Finished (completed or pruned) trials the study should hold; a resumed study runs only the missing ones.")],
    profile_id: Annotated[str | None, typer.Argument(help="The profile to tune (default: the file's only one); it needs a tune: section.", metavar="PROFILE")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Runs per trial; seed i is the profile's seed + i.")] = 1,
    parallel: Annotated[int, typer.Option("--parallel", "-j", min=1, help="Trials run at once, each worker in its own process (--backend local).")] = 1,
    pruner: Annotated[str | None, typer.Option(help=f"Stop poor trials early on their periodic evaluations: {', '.join(PRUNERS)} (default median; --backend ray: none only).")] = None,
    objective: Annotated[str, typer.Option(help=f"A trial's score from its seeds' returns: {', '.join(OBJECTIVES)}.")] = "mean",
    study: Annotated[str | None, typer.Option(help="Study name (default: the profile id).")] = None,
    storage: Annotated[Path | None, typer.Option(help="SQLite file of the study (default <runs-dir>/tune/<profile>.db).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where the best profile goes (default <runs-dir>/tune/<study>-best.yaml).")] = None,
    top: Annotated[int, typer.Option(min=1, help="Rows of the table of best trials.")] = 5,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Folder that holds the run folders.")] = api.DEFAULT_RUNS_DIR,
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Override a value of the profile, e.g. total_steps=20000. Repeatable.")] = None,
    backend: Annotated[str, typer.Option("--backend", help=f"Where trials run: {' or '.join(BACKENDS)} (one Ray task per trial, no pruning; needs daedalus[ray]).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="--backend ray: join the Ray cluster at HOST:PORT (default $RAY_ADDRESS, else start Ray here).")] = None,
    cpus_per_trial: Annotated[float, typer.Option("--cpus-per-trial", min=0.01, help="--backend ray: CPUs each trial's task asks Ray for.")] = 1,
    parallel_trials: Annotated[int | None, typer.Option("--parallel-trials", min=1, help="--backend ray: trials run at once (default: the cluster's CPUs / --cpus-per-trial).")] = None,
) -> None:
    """Tune PROFILE of FILE: search its tune: section with Optuna (needs daedalus[tune]).

    Each trial trains the profile once per seed with values drawn by TPE; its runs are normal
    runs (profile id <profile>-t<trial>, batch tune-<study>). The study is kept in SQLite, so
    the same command resumes it. The best trial is written as a profile for 'daedalus train'.
    With --backend ray each trial trains as a Ray task on any node of the cluster and its run
    folders come back into --runs-dir; trials are not pruned there.
    """
    api.load_project_modules()
    result = tune(
        file, profile_id, trials=trials, seeds=seeds, parallel=parallel, pruner=pruner, objective=objective,
        study=study, storage=storage, output=output, runs_dir=runs_dir, overrides=set_ or [],
        backend=backend, address=address, cpus_per_trial=cpus_per_trial, parallel_trials=parallel_trials,
    )
    _report(result, top, runs_dir)


def _report(result: TuneResult, top: int, runs_dir: Path) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts().items())) or "no trials"
    print(f"study '{result.study_name}' ({result.storage}): {counts}")
    headers, rows = result.table(top)
    if rows:
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, pad_edge=False, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console(width=None if sys.stdout.isatty() else 200).print(table)
    best = result.best
    if best is not None and result.best_profile is not None:
        print(f"best: trial {best.number}, {result.objective} {best.value:.2f} -> {result.best_profile}")
        print(f"reproduce: daedalus train {result.best_profile} --runs-dir {runs_dir}")
    print(f"compare: daedalus runs compare --batch {result.batch_id} --runs-dir {runs_dir}")
    for problem in result.problems:
        print(f"error: {problem}", file=sys.stderr)
    if result.interrupted:
        raise typer.Exit(130)
    if best is None:
        print("error: no trial completed; the failed trials' reasons are printed above", file=sys.stderr)
        raise typer.Exit(1)
    if result.problems:
        raise typer.Exit(1)
