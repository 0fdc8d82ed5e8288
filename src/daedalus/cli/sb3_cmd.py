"""``daedalus import-sb3``: an SB3 / rl-zoo3 zip as a run folder (one call into :func:`daedalus.api.sb3_import.import_sb3`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from daedalus import api
from daedalus.api.sb3_import import import_sb3


def register(app: typer.Typer) -> None:
    """Add the ``import-sb3`` command to ``app``."""
    app.command("import-sb3")(import_sb3_command)


def import_sb3_command(
    file: Annotated[Path, typer.Argument(help="The SB3 model zip (model.save(...) or an rl-zoo3 file).", metavar="MODEL_ZIP", exists=True, dir_okay=False)],
    env: Annotated[str, typer.Option("--env", help="The environment it was trained on (Gymnasium id, registered id or pkg.mod:make_env).", metavar="ENV_ID")],
    algo: Annotated[str | None, typer.Option("--algo", help="The algorithm (PPO, sb3:SAC, sb3_contrib:TQC, ...); default: read from the zip.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The run folder to create (must not exist); default: a new folder in --runs-dir.")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Folder that holds the run folders.")] = api.DEFAULT_RUNS_DIR,
    name: Annotated[str | None, typer.Option("--name", help="Profile id of the run (default <algo>-<env>-imported).")] = None,
    seed: Annotated[int, typer.Option(help="The seed recorded in the run's profile.")] = 0,
) -> None:
    """Import MODEL_ZIP as a run folder that 'daedalus evaluate' and 'daedalus replay' load.

    Nothing in the zip is unpickled: the weights are read with torch.load(weights_only=True),
    the settings from the zip's JSON with every pickled value skipped. A zip that cannot be read
    that way is refused with the reason. The optimizer state is not imported.
    """
    api.load_project_modules()
    result = import_sb3(file, env, algo=algo, output=output, runs_dir=runs_dir, name=name, seed=seed)
    print(f"imported {file} as {result.agent_id} ({result.policy}, {result.steps} steps) on '{result.env_id}' -> {result.path}")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"evaluate it with: daedalus evaluate {result.path}")
