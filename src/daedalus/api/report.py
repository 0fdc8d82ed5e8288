"""``daedalus report``: one self-contained HTML page about one or more runs.

For each run the page holds its metadata (run.json), learning curves (drawn by
:func:`~daedalus.api.compare.plot_run` from ``metrics.csv``), its periodic evaluations
(``artifacts.json``) and final evaluations (``eval.json``), the resolved ``profile.yaml`` as
text and the replay videos of ``<run>/videos/``; with several runs, an overview table and
their evaluation curves side by side (:func:`~daedalus.api.compare.plot_comparison`).
Images and videos are inlined as base64 ``data:`` URIs and the CSS is inline, so the file
opens offline and can be mailed around.

Run folders are data and may come from someone else (docs/security.md): every string taken
from one is HTML-escaped, nothing in them is executed, files are read only when they are
regular files inside the run folder (a link to ``~/.ssh/id_rsa`` must not end up in a page
that gets shared) and below a size cap, and the page's Content-Security-Policy lets no script
run and nothing load from outside it. A run.json that cannot be used is a RunError naming
the problem; damage anywhere else becomes a note in that run's section.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import socket
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.api.compare import CompareRow, plot_comparison, plot_run
from daedalus.errors import DaedalusError, MissingDependencyError, RunError
from daedalus.runs.index import as_finite_float, as_int64, is_clean_text, validate_record
from daedalus.runs.io import atomic_write_text, read_json
from daedalus.runs.store import RunFolder, pid_alive, resolve_run

__all__ = ["MAX_VIDEO_BYTES", "write_report"]

MiB = 1024 * 1024
#: A video larger than this is not embedded (a note says so); ``max_video_bytes`` changes it.
MAX_VIDEO_BYTES = 50 * MiB
#: All videos of one report together stay below this; later ones are noted, not embedded.
MAX_TOTAL_VIDEO_BYTES = 200 * MiB
#: Newest videos embedded per run (the stepwise loop records many episodes).
MAX_VIDEOS_PER_RUN = 10
#: Caps on what is read of each file: above them the file is noted, not read.
MAX_JSON_BYTES = 32 * MiB
MAX_PROFILE_BYTES = 1 * MiB
MAX_METRICS_BYTES = 256 * MiB
#: More curve panels than this (one per loss/* column) would make a figure nobody can read.
MAX_CURVES = 40
#: Rows shown per evaluation table, and characters shown of one free-text value.
MAX_TABLE_ROWS = 1000
MAX_TEXT_CHARS = 4000

_VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".gif": "image/gif"}

# No script may run and nothing may load from outside the page: a string that slipped past
# escaping still could not do anything.
_CSP = "default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.meta th { background: #f6f6f6; white-space: nowrap; }
thead th { background: #f0f0f0; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
img, video { max-width: 100%; height: auto; }
figure { margin: 0.5em 0; } figcaption { color: #666; font-size: 0.9em; }
.note { background: #fff7e0; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
.status-completed { color: #1a7f37; } .status-failed, .status-crashed { color: #c62828; }
.status-interrupted, .status-running { color: #b26a00; }
.muted { color: #777; }
"""


@dataclass
class _Run:
    """What the page shows of one run, read and checked once."""

    folder: Path
    run_id: str
    data: dict[str, Any]
    row: dict[str, Any]
    artifacts: dict[str, Any] = field(default_factory=dict)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    final_evaluations: list[dict[str, Any]] = field(default_factory=list)
    profile_text: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _VideoBudget:
    """Bytes of video the page may still take (shared by the runs of one report)."""

    left_bytes: int


def write_report(
    runs: Sequence[str | Path],
    output: str | Path,
    *,
    runs_dir: str | Path = "runs",
    smooth: int = 10,
    max_video_bytes: int = MAX_VIDEO_BYTES,
) -> Path:
    """Write one self-contained HTML page about ``runs`` to ``output`` and return its path.

    Args:
        runs: Run folders, run ids or unique id prefixes (inside ``runs_dir``).
        output: The HTML file to write (its folder is created; an existing file is replaced).
        runs_dir: Where run ids are looked up.
        smooth: Trailing moving-average window of the training curves, in logged points
            (as ``daedalus plot --smooth``); 1 draws the raw values only.
        max_video_bytes: Videos larger than this are not embedded; the page says so.

    Raises:
        RunError: A run cannot be found, or its run.json is unreadable or damaged (the
            message names the file and field; ``daedalus runs show RUN`` lists them all).
        MissingDependencyError: matplotlib is missing (``pip install 'daedalus[plot]'``).
    """
    if not runs:
        raise DaedalusError("report: name at least one run (a run folder, run id or unique prefix). 'daedalus runs list' shows them.")
    if smooth < 1:
        raise DaedalusError(f"report: smooth must be at least 1, got {smooth}.")
    loaded: list[_Run] = []
    seen: set[Path] = set()
    for ref in runs:
        # Through links to the real folder: its name is the run id, and "inside the run
        # folder" (what may be read) is inside that one.
        folder = RunFolder(resolve_run(ref, Path(runs_dir)).path.resolve())
        if folder.path not in seen:  # the same run named twice is shown once
            seen.add(folder.path)
            loaded.append(_load(folder))
    budget = _VideoBudget(MAX_TOTAL_VIDEO_BYTES)
    with tempfile.TemporaryDirectory(prefix="daedalus-report-") as tmp:
        overview = _overview(loaded, Path(tmp)) if len(loaded) > 1 else ""
        sections = [_run_section(i, run, Path(tmp), smooth, max_video_bytes, budget) for i, run in enumerate(loaded, 1)]
    page = _page(loaded, overview, sections)
    target = Path(output)
    try:
        atomic_write_text(target, page)
    except OSError as exc:
        raise DaedalusError(f"report: cannot write {target} ({exc.strerror or exc}). Choose another file with -o FILE.") from None
    return target


# --------------------------------------------------------------------------- reading a run


def _load(folder: RunFolder) -> _Run:
    """The run's files, checked; RunError when run.json cannot be used."""
    _, problem = _safe_file(folder.path, "run.json", MAX_JSON_BYTES)
    if problem is not None:
        raise RunError(f"report: {folder.path}: {problem} The report cannot describe this run without it.")
    data = folder.read()  # RunError naming the file when it is not a JSON object
    row, problems = validate_record(data, folder.path)
    if problems:
        raise RunError(
            f"report: {folder.path / 'run.json'}: {'; '.join(problems)}. Restore run.json from a backup "
            "(or correct the value by hand), or leave this run out of the report; 'daedalus runs show RUN' "
            "lists every problem."
        )
    run = _Run(folder=folder.path, run_id=folder.run_id, data=data, row=row)
    if row["status"] == "running" and data.get("host") == socket.gethostname() and not pid_alive(data.get("pid")):
        # As listings would say, without writing anything into the folder.
        run.row = {**row, "status": "crashed"}
        run.notes.append("run.json says 'running' but its training process is gone (killed?).")
    artifacts = _read_json(run, "artifacts.json")
    if isinstance(artifacts, dict):
        run.artifacts = artifacts
    elif artifacts is not None:
        run.notes.append("artifacts.json is not a JSON object; it is ignored.")
    evaluations = run.artifacts.get("evaluations")
    if isinstance(evaluations, list):
        run.evaluations = [e for e in evaluations if isinstance(e, dict)]
        if len(run.evaluations) < len(evaluations):
            run.notes.append(f"artifacts.json: {len(evaluations) - len(run.evaluations)} evaluation(s) are not objects and are left out.")
    run.final_evaluations = _final_evaluations(run)
    text, problem = _read_text(run.folder, "profile.yaml", MAX_PROFILE_BYTES)
    run.profile_text = text
    if problem is not None:
        run.notes.append(problem)
    return run


def _final_evaluations(run: _Run) -> list[dict[str, Any]]:
    """eval.json's history (every ``daedalus evaluate`` and the end-of-training evaluation)."""
    saved = _read_json(run, "eval.json")
    entries: list[Any] = []
    if isinstance(saved, dict):
        history, latest = saved.get("history"), saved.get("latest")
        entries = history if isinstance(history, list) and history else [latest] if latest is not None else []
    elif saved is not None:
        run.notes.append("eval.json is not a JSON object; it is ignored.")
    if not entries and isinstance(run.artifacts.get("final_evaluation"), dict):
        entries = [run.artifacts["final_evaluation"]]
    return [e for e in entries if isinstance(e, dict)]


def _read_json(run: _Run, name: str) -> Any:
    """A JSON file of the run, or None (with a note when it exists but cannot be read)."""
    path, problem = _safe_file(run.folder, name, MAX_JSON_BYTES)
    if path is None:
        if problem is not None:
            run.notes.append(problem)
        return None
    try:
        return read_json(path)
    except (OSError, ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else _short(f"{type(exc).__name__}: {exc}", 300)
        run.notes.append(f"{name} cannot be read ({why}); it is ignored.")
        return None


def _read_text(folder: Path, name: str, limit: int) -> tuple[str | None, str | None]:
    """``(text, problem)`` of a text file of the run; undecodable bytes become U+FFFD."""
    path, problem = _safe_file(folder, name, limit)
    if path is None:
        return None, problem
    try:
        return path.read_bytes().decode("utf-8", errors="replace"), None
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror or exc})."


def _safe_file(folder: Path, name: str, limit: int) -> tuple[Path | None, str | None]:
    """``(path, None)`` when ``folder/name`` is a regular file inside the folder of at most ``limit`` bytes.

    ``(None, None)`` when it does not exist; ``(None, why)`` otherwise. A link pointing out of
    the folder is refused: its target would end up in a page that gets shared. A FIFO or a
    device is refused: reading one blocks forever or never ends.
    """
    path = folder / name
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror or exc})."
    try:
        real = path.resolve(strict=True)
        inside = real.is_relative_to(folder.resolve(strict=True))
        info = real.stat()
    except (OSError, RuntimeError):
        return None, f"{name} is a broken link or cannot be read; it is ignored."
    if not inside:
        return None, f"{name} is a link to a file outside the run folder; it is not read."
    if not stat.S_ISREG(info.st_mode):
        return None, f"{name} is not a regular file; it is not read."
    if info.st_size > limit:
        return None, f"{name} is {_size(info.st_size)}, more than the {_size(limit)} this report reads; it is left out."
    return real, None


# --------------------------------------------------------------------------- sections


def _overview(runs: list[_Run], tmp: Path) -> str:
    """The table of all runs and their evaluation curves on one plot."""
    rows = "".join(
        "<tr>"
        f'<td><a href="#run-{i}">{_esc(run.run_id)}</a></td>'
        f"<td>{_esc(run.row['profile_id'])}</td><td>{_esc(run.row['agent_id'])}</td><td>{_esc(run.row['env_id'])}</td>"
        f"<td>{_status(run.row['status'])}</td><td class=\"num\">{_int(run.row['steps'])}</td>"
        f"<td class=\"num\">{_num(run.data.get('best_return'))}</td><td class=\"num\">{_num(run.data.get('final_return'))}</td>"
        f"<td class=\"num\">{_num(run.data.get('duration_s'), 1)}</td>"
        "</tr>"
        for i, run in enumerate(runs, 1)
    )
    table = _table(["run", "profile", "agent", "env", "status", "steps", "best return", "final return", "duration (s)"], rows)
    # plot_comparison reads artifacts.json itself: only runs whose file passed the checks above.
    compare = [
        CompareRow(group=run.run_id, runs=1, final_mean=None, final_std=None, best_mean=None, best_std=None,
                   steps=0, wall_s=None, steps_per_s=None, run_ids=[run.run_id], run_paths=[str(run.folder)])
        for run in runs
        if any(_finite(e.get("step")) and _finite(e.get("mean_return")) for e in run.evaluations)
    ]
    if not compare:
        figure = _note("None of these runs has periodic evaluations to draw side by side (eval_every_steps: 0?).")
    else:
        target = tmp / "comparison.png"
        try:
            plot_comparison(compare, target)
            figure = _figure(target, "Periodic evaluations of each run (mean return against environment steps)")
        except MissingDependencyError:
            raise
        except (DaedalusError, ValueError, OSError) as exc:
            figure = _note(f"The comparison plot could not be drawn ({type(exc).__name__}: {exc}).")
    return f'<section id="overview"><h2>Overview</h2>{table}{figure}</section>'


def _run_section(index: int, run: _Run, tmp: Path, smooth: int, max_video_bytes: int, budget: _VideoBudget) -> str:
    curves = _curves(run, tmp / f"curves-{index}.png", smooth)
    videos = _videos(run, max_video_bytes, budget)
    parts = [
        f'<section class="run" id="run-{index}">',
        f"<h2>{_esc(run.run_id)}</h2>",
        "<h3>Run</h3>", _metadata(run),
        "<h3>Learning curves</h3>", curves,
        "<h3>Periodic evaluations</h3>", _periodic_table(run),
        "<h3>Final evaluations</h3>", _final_table(run),
    ]
    if videos:
        parts += ["<h3>Replay</h3>", videos]
    parts += ["<h3>Profile</h3>"]
    if run.profile_text is not None:
        parts.append(f'<pre class="profile">{_esc(run.profile_text, limit=None)}</pre>')
    else:
        parts.append(_note("No profile.yaml in this run folder."))
    if run.notes:
        parts.append("<h3>Notes</h3>" + "".join(_note(n) for n in run.notes))
    parts.append("</section>")
    return "\n".join(parts)


def _metadata(run: _Run) -> str:
    data, row = run.data, run.row
    items: list[tuple[str, str]] = [
        ("run id", _esc(run.run_id)),
        ("status", _status(row["status"])),
        ("profile", _esc(row["profile_id"])),
        ("agent", _esc(row["agent_id"])),
        ("env", _esc(row["env_id"])),
        ("seed", _int(row["seed"])),
        ("steps", _int(row["steps"])),
        ("duration", _duration(data.get("duration_s"))),
        ("best return", _num(data.get("best_return"))),
        ("final return", _num(data.get("final_return"))),
    ]
    if data.get("stop_reason") is not None:
        items.append(("stop reason", _esc(data["stop_reason"])))
    items.append(("created", _when(row["started_at"], data.get("started_at_iso"))))
    items.append(("finished", _when(row["finished_at"], None)))
    split = run.artifacts.get("time_split")
    train_seconds = as_finite_float(split.get("train_seconds")) if isinstance(split, dict) else None
    if isinstance(split, dict) and train_seconds is not None and train_seconds > 0:
        steps = as_finite_float(split.get("steps"))
        steps = steps if steps is not None else as_finite_float(row["steps"])
        rate = f"{steps / train_seconds:,.0f} steps/s" if steps is not None else "-"
        shares = ", ".join(f"{key} {_num(split.get(key))} s" for key in ("env", "inference", "learn", "other") if key in split)
        items.append(("training time", f"{_num(train_seconds)} s ({rate}; {_esc(shares)})"))
    if row["batch_id"] is not None:
        items.append(("batch", _esc(row["batch_id"])))
    for key, label in (("last_checkpoint", "last checkpoint"), ("host", "host")):
        if data.get(key) is not None:
            items.append((label, _esc(data[key])))
    versions = data.get("versions")
    if isinstance(versions, dict) and versions:
        items.append(("versions", _esc(", ".join(f"{_plain(k)} {_plain(v)}" for k, v in versions.items()))))
    command = data.get("command")
    if isinstance(command, list) and command:
        items.append(("command", f"<code>{_esc(' '.join(_plain(c) for c in command))}</code>"))
    error = data.get("error")
    if isinstance(error, dict):
        text = _esc(f"{_plain(error.get('type'))}: {_plain(error.get('message'))}")
        traceback = error.get("traceback")
        if traceback is not None:
            text += f"<details><summary>traceback</summary><pre>{_esc(traceback, limit=None)}</pre></details>"
        items.append(("error", text))
    if run.artifacts.get("final_evaluation_error") is not None:
        items.append(("final evaluation error", _esc(run.artifacts["final_evaluation_error"])))
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in items)
    return f'<table class="meta"><tbody>{body}</tbody></table>'


def _curves(run: _Run, target: Path, smooth: int) -> str:
    """The run's learning curves as an inline PNG, or a note saying why there are none."""
    path, problem = _safe_file(run.folder, "metrics.csv", MAX_METRICS_BYTES)
    if path is None:
        return _note(problem or "No metrics.csv in this run folder, so there are no learning curves.")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = handle.readline(MiB)
    except OSError as exc:
        return _note(f"metrics.csv cannot be read ({exc.strerror or exc}).")
    panels = sum(1 for key in header.split(",") if key.strip().startswith("loss/"))
    if panels > MAX_CURVES:
        return _note(f"metrics.csv has {panels} loss/* columns, more than the {MAX_CURVES} curves a report draws; draw them with 'daedalus plot RUN'.")
    try:
        _, keys = plot_run(run.folder, target, smooth=smooth)
    except MissingDependencyError:
        raise
    except (DaedalusError, ValueError, OSError, LookupError, csv.Error) as exc:
        # A hand-edited metrics.csv: a value that is not a number, a field over the csv
        # module's size limit, a title matplotlib cannot lay out.
        return _note(f"The learning curves could not be drawn from metrics.csv ({_short(f'{type(exc).__name__}: {exc}', 300)}).")
    caption = "Drawn from metrics.csv: " + ", ".join(keys)
    if smooth > 1:
        caption += f" (noisy curves with a trailing mean of {smooth} logged points)"
    return _figure(target, caption)


def _periodic_table(run: _Run) -> str:
    if not run.evaluations:
        return _note("No periodic evaluations in artifacts.json (eval_every_steps: 0, or training stopped before the first).")
    shown = run.evaluations[:MAX_TABLE_ROWS]
    rows = "".join(
        "<tr>"
        f"<td class=\"num\">{_int(e.get('step'))}</td><td class=\"num\">{_num(e.get('mean_return'))}</td>"
        f"<td class=\"num\">{_num(e.get('std_return'))}</td><td class=\"num\">{_num(e.get('train_seconds'), 2)}</td>"
        "</tr>"
        for e in shown
    )
    table = _table(["step", "mean return", "std return", "training seconds"], rows, css="evaluations")
    if len(run.evaluations) > len(shown):
        table += _note(f"{len(run.evaluations) - len(shown):,} later evaluations are not shown.")
    return table


def _final_table(run: _Run) -> str:
    if not run.final_evaluations:
        return _note("No final evaluation (final_eval_episodes: 0, or the run did not complete). 'daedalus evaluate RUN' adds one.")
    shown = run.final_evaluations[-MAX_TABLE_ROWS:]
    rows = "".join(
        "<tr>"
        f"<td>{_esc(e.get('checkpoint'))}</td><td class=\"num\">{_int(e.get('n_episodes'))}</td>"
        f"<td class=\"num\">{_num(e.get('mean_return'))}</td><td class=\"num\">{_num(e.get('std_return'))}</td>"
        f"<td class=\"num\">{_num(e.get('min_return'))}</td><td class=\"num\">{_num(e.get('max_return'))}</td>"
        f"<td class=\"num\">{_num(e.get('mean_length'), 1)}</td><td>{_esc(e.get('deterministic'))}</td>"
        f"<td class=\"num\">{_int(e.get('seed'))}</td><td>{_when(as_finite_float(e.get('evaluated_at')), None)}</td>"
        "</tr>"
        for e in shown
    )
    headers = ["checkpoint", "episodes", "mean return", "std return", "min", "max", "mean length", "deterministic", "seed", "evaluated"]
    return _table(headers, rows, css="final-evaluations")


def _videos(run: _Run, max_video_bytes: int, budget: _VideoBudget) -> str:
    """The newest replay videos of ``<run>/videos/`` inlined, and notes for those left out."""
    folder = run.folder / "videos"
    try:
        if folder.is_symlink():
            return _note("videos/ is a link; videos are only embedded from the run folder itself.")
        if not folder.is_dir():
            return ""
        names = [p.name for p in folder.iterdir() if p.suffix.lower() in _VIDEO_TYPES]
    except OSError:
        return _note("videos/ cannot be listed.")
    found: list[tuple[float, str, Path]] = []
    out: list[str] = []
    for name in names:
        path, problem = _safe_file(folder, name, max_video_bytes)
        if path is None:
            out.append(_note(f"videos/{problem or name + ' is gone.'}"))
            continue
        found.append((path.stat().st_mtime, name, path))
    found.sort()
    if len(found) > MAX_VIDEOS_PER_RUN:
        out.append(_note(f"{len(found) - MAX_VIDEOS_PER_RUN} older videos are not embedded (the newest {MAX_VIDEOS_PER_RUN} are)."))
        found = found[-MAX_VIDEOS_PER_RUN:]
    for _, name, path in found:
        size = path.stat().st_size
        if size > budget.left_bytes:
            out.append(_note(f"videos/{name} is not embedded: this report already holds {_size(MAX_TOTAL_VIDEO_BYTES - budget.left_bytes)} of video."))
            continue
        try:
            blob = path.read_bytes()[: max_video_bytes + 1]
        except OSError as exc:
            out.append(_note(f"videos/{name} cannot be read ({exc.strerror or exc})."))
            continue
        mime = _VIDEO_TYPES[path.suffix.lower()]
        if not _looks_like(mime, blob):
            out.append(_note(f"videos/{name} is not a {mime} file (its first bytes say otherwise); it is not embedded."))
            continue
        budget.left_bytes -= len(blob)
        uri = f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}"
        caption = f"<figcaption>videos/{_esc(name)} ({_size(len(blob))})</figcaption>"
        if mime == "image/gif":
            out.append(f'<figure><img src="{uri}" alt="replay {_esc(name)}">{caption}</figure>')
        else:
            out.append(f'<figure><video controls preload="metadata" src="{uri}"></video>{caption}</figure>')
    return "\n".join(out)


def _looks_like(mime: str, blob: bytes) -> bool:
    """Whether the file starts as files of ``mime`` do (a renamed file is not embedded as video)."""
    if mime == "video/mp4":
        return blob[4:8] == b"ftyp"
    if mime == "video/webm":
        return blob.startswith(b"\x1a\x45\xdf\xa3")
    return blob.startswith((b"GIF87a", b"GIF89a"))


def _page(runs: list[_Run], overview: str, sections: list[str]) -> str:
    from daedalus import __version__

    title = "Daedalus report: " + ", ".join(run.run_id for run in runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
    generated = time.strftime("%Y-%m-%d %H:%M:%S %z")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="muted">{len(runs)} run{"s" if len(runs) > 1 else ""}; generated {_esc(generated)} by daedalus {_esc(__version__)}.</p>',
        overview,
        *sections,
        "</body></html>",
        "",
    ])


# --------------------------------------------------------------------------- HTML pieces


def _figure(png: Path, caption: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<figure><img src="{uri}" alt="{_esc(caption)}"><figcaption>{_esc(caption)}</figcaption></figure>'


def _table(headers: list[str], rows: str, css: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _status(status: Any) -> str:
    text = _plain(status)
    css = text if text in ("completed", "failed", "crashed", "interrupted", "running") else "other"
    return f'<span class="status-{css}">{_esc(text)}</span>'


def _esc(value: Any, limit: int | None = MAX_TEXT_CHARS) -> str:
    """Any value from a run folder as HTML text: escaped, valid UTF-8, shortened to ``limit`` characters."""
    text = _plain(value)
    if limit is not None:
        text = _short(text, limit)
    return html.escape(text, quote=True)


def _plain(value: Any) -> str:
    """A value as plain text: strings as they are (lone surrogates replaced), anything else as JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=lambda v: type(v).__name__)
        except (ValueError, RecursionError):
            text = f"({type(value).__name__})"
    if not is_clean_text(text):
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text.replace("\0", "\ufffd")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(n_bytes: int) -> str:
    return f"{n_bytes / MiB:,.1f} MiB" if n_bytes >= MiB else f"{n_bytes / 1024:,.1f} KiB"


def _finite(value: Any) -> bool:
    return as_finite_float(value) is not None


def _num(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``nan``/``inf`` as such (a diverged run); ``-`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    number = as_finite_float(value)
    return "-" if number is None else f"{number:,.{digits}f}"


def _int(value: Any) -> str:
    number = as_int64(value)
    return "-" if number is None else f"{number:,}"


def _duration(value: Any) -> str:
    seconds = as_finite_float(value)
    if seconds is None or seconds < 0:
        return "-"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    clock = f" ({hours}:{minutes:02d}:{rest:02d})" if seconds >= 60 else ""
    return f"{seconds:,.1f} s{clock}"


def _when(timestamp: float | None, fallback: Any) -> str:
    if timestamp is not None:
        try:
            return _esc(time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(timestamp)))
        except (OverflowError, OSError, ValueError):
            pass
    return _esc(fallback)
