"""The ``daedalus`` command line: thin Typer commands, each one call into :mod:`daedalus.api`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from daedalus import api
from daedalus.cli.demos_cmd import register as register_demos
from daedalus.cli.report_cmd import register as register_report
from daedalus.cli.sb3_cmd import register as register_sb3
from daedalus.cli.tune_cmd import register as register_tune
from daedalus.errors import DaedalusError

app = typer.Typer(
    name="daedalus",
    help="Train, evaluate and compare reinforcement-learning agents from YAML profiles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
module_app = typer.Typer(help="Manage the user modules imported at start-up (.daedalus.yaml).", no_args_is_help=True)
list_app = typer.Typer(help="List registered agents, environments and wrappers.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect saved runs.", no_args_is_help=True)
describe_app = typer.Typer(help="Describe an agent's parameters.", no_args_is_help=True)
app.add_typer(module_app, name="module")
app.add_typer(list_app, name="list")
app.add_typer(runs_app, name="runs")
app.add_typer(describe_app, name="describe")

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder that holds the run folders.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-code",
        help="Allow the run's profile to import code that is not built in or part of the current project "
        "(file.py:Obj, other modules). Only for runs from someone you trust; see docs/security.md.",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a value: KEY=VALUE with a dotted key, e.g. config.learning_rate=1e-3. Repeatable."),
]


def _version(value: bool) -> None:
    if value:
        from daedalus import __version__

        print(f"daedalus {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Train, evaluate and compare reinforcement-learning agents from YAML profiles."""


def _load_modules() -> None:
    # Start-up, like the signal handlers: plugins and the project's modules register their
    # agents, envs and wrappers before a command looks them up.
    api.load_project_modules()


# --------------------------------------------------------------------------- training


@app.command()
def train(
    file: Annotated[Path, typer.Argument(help="Profile file (YAML).", metavar="FILE")],
    profile_ids: Annotated[list[str] | None, typer.Argument(help="Profiles to train (default: all in the file).", metavar="ID")] = None,
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
    set_: SetOpt = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Profiles with rollout.backend: ray join the Ray cluster at HOST:PORT (same as --set rollout.address=HOST:PORT; default $RAY_ADDRESS, else a local Ray).")] = None,
) -> None:
    """Train profiles of FILE (all, or the IDs given).

    Profiles are validated first, then trained one after another; each gets a run folder.
    """
    _load_modules()
    overrides = [*(set_ or []), *([f"rollout.address={ray_address}"] if ray_address else [])]
    results = api.train_many(file, profile_ids or None, runs_dir=runs_dir, overrides=overrides)
    _finish(results)


@app.command()
def batch(
    file: Annotated[Path, typer.Argument(help="Profile file (YAML).", metavar="FILE")],
    parallel: Annotated[int, typer.Option("--parallel", "-j", min=1, help="Profiles trained at once, each in its own process (--backend local).")] = 1,
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
    set_: SetOpt = None,
    backend: Annotated[str, typer.Option("--backend", help="local (this machine) or ray (one Ray task per profile; needs daedalus[ray]).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="--backend ray: join the Ray cluster at HOST:PORT (default $RAY_ADDRESS, else start Ray here).")] = None,
    cpus_per_run: Annotated[float, typer.Option("--cpus-per-run", min=0.01, help="--backend ray: CPUs each profile's task asks Ray for.")] = 1,
) -> None:
    """Train every profile of FILE, optionally in parallel, or on a Ray cluster.

    A failed profile does not stop the others; a summary table ends the batch. With
    --backend ray each profile trains on some node of the cluster and its run folder is
    brought back into --runs-dir (see docs/ray-batches.md).
    """
    _load_modules()
    result = api.batch(
        file, runs_dir=runs_dir, parallel=parallel, overrides=set_ or [],
        backend=backend, address=address, cpus_per_run=cpus_per_run,
    )
    _finish(result.results)


@app.command()
def resume(
    run: Annotated[str, typer.Argument(help="Run folder, run id or unique id prefix.")],
    total_steps: Annotated[int | None, typer.Option("--total-steps", min=1, help="Train up to this many steps (to extend a finished run).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint to resume from (default: the newest one that resumes exactly).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Resume even though the code, library versions or profile changed since the run was trained.")] = False,
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
    trust_code: TrustOpt = False,
) -> None:
    """Continue an interrupted, crashed or finished run in its own folder, exactly where it stopped.

    Weights, optimizers, random generators, counters, the envs (replayed from the run's env
    journal), metrics.csv and TensorBoard all continue from the checkpoint; see docs/runs.md.
    """
    _load_modules()
    result = api.resume(
        run, runs_dir=runs_dir, total_steps=total_steps, checkpoint=checkpoint, force=force, trust_code=trust_code
    )
    _finish([result])


def _finish(results: list[api.RunResult]) -> None:
    if len(results) > 1:
        _print_table(
            ["profile", "status", "steps", "final return", "time (s)", "run"],
            [
                [r.profile_id, r.status, str(r.steps), _num(r.final_return), f"{r.duration_s:.1f}", str(r.path)]
                for r in results
            ],
        )
    if len(results) == 1 and results[0].status == "completed":
        print(f"run folder: {results[0].path}")
    if any(r.status == "interrupted" for r in results):
        raise typer.Exit(130)
    if any(r.status != "completed" for r in results):
        raise typer.Exit(1)


# --------------------------------------------------------------------------- modules and lists


@module_app.command("add")
def module_add(name: Annotated[str, typer.Argument(help="Importable module, e.g. my_project.agents.")]) -> None:
    """Import MODULE and record it in .daedalus.yaml."""
    print(f"added '{name}' to {api.add_module(name)}")


@module_app.command("remove")
def module_remove(name: Annotated[str, typer.Argument(help="Module name to remove.")]) -> None:
    """Remove MODULE from the nearest .daedalus.yaml."""
    print(f"removed '{name}' from {api.remove_module(name)}")


@module_app.command("list")
def module_list() -> None:
    """Show the modules recorded in the nearest .daedalus.yaml."""
    project_file, names = api.project_modules()
    if project_file is None:
        print("no .daedalus.yaml found from here upwards; add a module with 'daedalus module add MODULE'")
        return
    print(f"# {project_file}")
    for name in names:
        print(name)


def _print_ids(items: dict[str, str], filter_: str | None) -> None:
    needle = (filter_ or "").lower()
    rows = [[k, v] for k, v in items.items() if needle in k.lower() or needle in v.lower()]
    _print_table(["id", "description"], rows)


FilterOpt = Annotated[str | None, typer.Option("--filter", "-f", help="Only ids or descriptions containing TEXT.")]


@list_app.command("agents")
def list_agents(filter_: FilterOpt = None) -> None:
    """Agents: built-ins and those registered by your modules."""
    _load_modules()
    _print_ids(api.list_agents(), filter_)


@list_app.command("envs")
def list_envs(filter_: FilterOpt = None) -> None:
    """Environments: every Gymnasium id and those registered by your modules."""
    _load_modules()
    _print_ids(api.list_envs(), filter_)


@list_app.command("wrappers")
def list_wrappers(filter_: FilterOpt = None) -> None:
    """Wrappers: gymnasium.wrappers classes and those registered by your modules."""
    _load_modules()
    _print_ids(api.list_wrappers(), filter_)


# --------------------------------------------------------------------------- runs


@runs_app.command("list")
def runs_list(
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
    profile: Annotated[str | None, typer.Option(help="Only runs of this profile id.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only runs of this agent id.")] = None,
    env: Annotated[str | None, typer.Option(help="Only runs on this env id.")] = None,
    status: Annotated[str | None, typer.Option(metavar="STATUS", help="running, completed, interrupted, failed, crashed or corrupt.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Table of runs: profile, agent, env, steps, returns, status."""
    rows = api.runs_table(runs_dir, profile_id=profile, agent_id=agent, env_id=env, status=status)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"no runs in {runs_dir}")
        return
    _print_table(
        ["run", "profile", "agent", "env", "steps", "best", "final", "status"],
        [
            [r["run_id"], r["profile_id"], r["agent_id"], r["env_id"], str(r["steps"] or 0),
             _num(r["best_return"]), _num(r["final_return"]), r["status"]]
            for r in rows
        ],
    )


@app.command()
def plot(
    run: Annotated[str, typer.Argument(help="Run folder, run id or unique id prefix.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="PNG to write (default <run>/plots/curves.png).")] = None,
    smooth: Annotated[int, typer.Option(min=1, help="Moving-average window over logged points (1: raw only).")] = 10,
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
) -> None:
    """Draw a run's learning curves (returns, length, steps/s, losses) from its metrics.csv (needs daedalus[plot])."""
    path, keys = api.plot_run(run, output, runs_dir=runs_dir, smooth=smooth)
    print(f"{len(keys)} curves ({', '.join(keys)}) -> {path}")


@runs_app.command("compare")
def runs_compare(
    runs: Annotated[list[str] | None, typer.Argument(help="Run folders, ids or unique prefixes (or use --profile / --batch).", metavar="RUN")] = None,
    profile: Annotated[str | None, typer.Option(help="Every run of this profile id.")] = None,
    batch_id: Annotated[str | None, typer.Option("--batch", help="Every run of this batch id.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Also report the training time to the first evaluation >= this return.")] = None,
    by: Annotated[str, typer.Option(help="run.json key to group runs by (e.g. agent_id, env_id).")] = "profile_id",
    fmt: Annotated[str, typer.Option("--format", help="markdown, csv or json.")] = "markdown",
    plot: Annotated[Path | None, typer.Option(help="Also draw learning curves (one line and band per group) to this PNG (needs daedalus[plot]).")] = None,
    band: Annotated[str, typer.Option(help="Band of --plot: std (mean ± std over runs) or iqm (interquartile mean with a bootstrapped 95% interval, rliable-style).")] = "std",
    x: Annotated[str, typer.Option(help="x axis of --plot: steps or time (training seconds).")] = "steps",
    smooth: Annotated[int, typer.Option(min=1, help="Moving-average window of --plot, in evaluation points.")] = 1,
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
) -> None:
    """Compare runs: one row per profile (or --by key), mean ± std over its runs (seeds)."""
    rows, corrupt = api.compare_runs(runs or (), profile=profile, batch=batch_id, runs_dir=runs_dir, threshold=threshold, by=by)
    print(api.format_comparison(rows, fmt, threshold))
    if plot is not None:
        api.plot_comparison(rows, plot, x=x, smooth=smooth, band=band)
        print(f"curves: {plot}", file=sys.stderr)
    if corrupt:
        print(f"({corrupt} corrupt run(s) left out; 'daedalus runs show RUN' says what is wrong)", file=sys.stderr)


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="Run folder, run id or unique id prefix.")],
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
) -> None:
    """Show one run: run.json, checkpoints and files."""
    data = api.show_run(run, runs_dir)
    data.pop("command", None)
    error = data.pop("error", None)
    problems = data.pop("problems", [])
    for key, value in data.items():
        if isinstance(value, list | dict):
            value = json.dumps(value)
        print(f"{key:>16}: {value}")
    if isinstance(error, dict) and not problems:  # the problems say the same, one per line
        print(f"{'error':>16}: {error.get('type')}: {error.get('message')}")
    for problem in problems:
        print(f"{'problem':>16}: {problem}")


@app.command()
def evaluate(
    run: Annotated[str, typer.Argument(help="Run folder, run id or unique id prefix; or a profile file (.yaml) of a stepwise agent.")],
    profile_id: Annotated[str | None, typer.Argument(help="With a profile file: the profile to evaluate (default: its only one).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint name (default: final, else the newest).")] = None,
    episodes: Annotated[int | None, typer.Option("--episodes", "-n", min=1, help="Episodes to run (default 10; for a profile file, its loop's eval_episodes).")] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic/--stochastic", help="Greedy or sampled actions.")] = True,
    seed: Annotated[int, typer.Option(help="Episode i is reset with seed + i.")] = 0,
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
    trust_code: TrustOpt = False,
    policy: Annotated[
        list[str] | None,
        typer.Option("--policy", metavar="NAME=random|RUN[:POLICY]", help="Multi-agent runs: play policy NAME with random actions or with a policy of another run (cross-play). Repeatable."),
    ] = None,
) -> None:
    """Evaluate a saved run (mean ± std over N episodes).

    Prints mean ± std, min, max and mean length, and writes them to the run's eval.json.
    Given a profile file instead, runs its stepwise agent without memorize/update (Gym Loop's
    evaluate) and prints the same line.
    """
    _load_modules()
    result, path = api.evaluate_target(
        run, profile_id, checkpoint=checkpoint, episodes=episodes, deterministic=deterministic, seed=seed,
        runs_dir=runs_dir, trust_code=trust_code, policies=policy or [],
    )
    print(result.format())
    if path is not None:
        print(f"written to {path}")


@app.command("create-default")
def create_default(
    agent: Annotated[str, typer.Option("--agent", help="Agent: registered id, pkg.mod:Class or path/file.py:Class.")],
    env: Annotated[str | None, typer.Option("--env", help="Environment id (default: Pendulum-v1 for stepwise agents, else CartPole-v1).")] = None,
    loop: Annotated[str | None, typer.Option("--loop", help="Loop class for stepwise agents, pkg.mod:MyLoop (default: the default loop).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Profile file to write (default: print to stdout).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output file.")] = False,
) -> None:
    """Write a profile holding every declared parameter of AGENT (and its loop) with its default."""
    _load_modules()
    text = api.write_default_profile(agent, env, loop, output, force=force)
    print(f"wrote {output}" if output is not None else text.rstrip("\n"))


@app.command()
def replay(
    run: Annotated[str, typer.Argument(help="Run folder, run id or unique id prefix.")],
    video: Annotated[Path | None, typer.Option(help="Video file to write (.mp4 or .gif); default <run>/videos/.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint name (default: final, else the newest).")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes to record.")] = 1,
    deterministic: Annotated[bool, typer.Option("--deterministic/--stochastic", help="Greedy or sampled actions.")] = True,
    seed: Annotated[int, typer.Option(help="Episode i is reset with seed + i.")] = 0,
    runs_dir: RunsDir = api.DEFAULT_RUNS_DIR,
    trust_code: TrustOpt = False,
) -> None:
    """Record a saved run's agent to a video.

    Writes .mp4 or .gif (needs daedalus[video]).
    """
    _load_modules()
    result, path = api.replay(
        run, video, checkpoint=checkpoint, episodes=episodes, deterministic=deterministic, seed=seed,
        runs_dir=runs_dir, trust_code=trust_code,
    )
    print(result.format())
    print(f"video: {path}")


# --------------------------------------------------------------------------- describe


@describe_app.command("agent")
def describe_agent(agent_id: Annotated[str, typer.Argument(help="Agent id or reference.")]) -> None:
    """Every config field of an agent: type, default, meaning."""
    _load_modules()
    info = api.describe_agent(agent_id)
    print(f"{info['agent_id']}: {info['description']}")
    if not info["fields"]:
        print("(this agent declares no typed config; any 'config' keys are passed through)")
        return
    _print_table(
        ["field", "type", "default", "meaning"],
        [[f["name"], f["type"], json.dumps(f["default"]), f["help"]] for f in info["fields"]],
    )


# --------------------------------------------------------------------------- helpers


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


# Commands that live in their own module, each with its api counterpart.
register_report(app)
register_tune(app)
register_demos(app)
register_sb3(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``daedalus`` console script."""
    api.install_signal_handlers()
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except DaedalusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # Usage errors of the (vendored) click inside Typer know how to show themselves.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        if os.environ.get("DAEDALUS_DEBUG"):
            raise
        print(
            f"error: {type(exc).__name__}: {exc}\n"
            "This error came from outside Daedalus's checks (an environment, a package or your code). "
            "Run again with DAEDALUS_DEBUG=1 to see the full traceback.",
            file=sys.stderr,
        )
        sys.exit(1)
