"""``daedalus demos record|info``: demonstrations from a saved run, and what a demonstrations folder holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from daedalus import api
from daedalus.api.demos import demos_info, format_demos_info, record_demos

demos_app = typer.Typer(help="Record and inspect demonstrations (for bc, dagger, gail, airl).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``demos`` command group to ``app`` (the ``daedalus`` application)."""
    app.add_typer(demos_app, name="demos")


@demos_app.command("record")
def record(
    run: Annotated[str, typer.Argument(help="Run folder, run id or unique id prefix of the expert.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Demonstrations folder to write (demos.safetensors + demos.json).")],
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes to record.")] = 10,
    seed: Annotated[int, typer.Option(help="Episode i is reset with seed + i.")] = 0,
    deterministic: Annotated[bool, typer.Option("--deterministic/--stochastic", help="Greedy or sampled actions.")] = True,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint name (default: final, else the newest).")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Folder that holds the run folders.")] = api.DEFAULT_RUNS_DIR,
    trust_code: Annotated[
        bool,
        typer.Option(
            "--trust-code",
            help="Allow the run's profile to import code that is not built in or part of the current project. "
            "Only for runs from someone you trust; see docs/security.md.",
        ),
    ] = False,
) -> None:
    """Play a saved agent for N episodes on its run's env and write them as demonstrations."""
    api.load_project_modules()
    demos = record_demos(
        run, episodes, output, seed=seed, deterministic=deterministic, checkpoint=checkpoint, runs_dir=runs_dir,
        trust_code=trust_code,
    )
    returns = demos.episode_returns
    print(
        f"recorded {len(demos)} episodes, {demos.num_steps} steps, return {returns.mean():.2f} ± {returns.std():.2f} "
        f"-> {output}"
    )


@demos_app.command("info")
def info(
    path: Annotated[Path, typer.Argument(help="Demonstrations folder, imitation / rl-zoo .npz file or folder, or Minari dataset.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Print episodes, steps, mean ± std return, spaces and where the demonstrations came from."""
    summary = demos_info(path)
    print(json.dumps(summary, indent=2, default=str) if as_json else format_demos_info(summary))
