"""``daedalus report RUN... -o report.html``: one self-contained HTML page about runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from daedalus import api
from daedalus.api.report import MAX_VIDEO_BYTES, write_report


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app`` (the ``daedalus`` application)."""
    app.command("report")(report)


def report(
    runs: Annotated[list[str], typer.Argument(help="Run folders, run ids or unique id prefixes.", metavar="RUN")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write (replaced when it exists).")] = Path("report.html"),
    smooth: Annotated[int, typer.Option(min=1, help="Moving-average window of the training curves, in logged points (1: raw only).")] = 10,
    max_video_mb: Annotated[float, typer.Option("--max-video-mb", min=0, help="Replay videos larger than this are noted, not embedded.")] = MAX_VIDEO_BYTES / 2**20,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Folder that holds the run folders.")] = api.DEFAULT_RUNS_DIR,
) -> None:
    """Write one HTML page about RUNs: metadata, learning curves, evaluations, profile and replay videos.

    The page is self-contained (images and videos inlined, no scripts, nothing loaded from
    the network), so it opens offline and can be mailed. Needs daedalus[plot].
    """
    path = write_report(runs, output, runs_dir=runs_dir, smooth=smooth, max_video_bytes=int(max_video_mb * 2**20))
    size = path.stat().st_size / 2**20
    print(f"report of {len(runs)} run{'s' if len(runs) > 1 else ''} -> {path} ({size:,.1f} MiB)")
