"""``daedalus report``: one self-contained HTML page holding a run's own numbers, safe with hostile folders.

Real runs (PPO on CartPole, a few hundred steps) are reported; the checks read the page's
tables back with an HTML parser and compare them with run.json, artifacts.json and eval.json.
Hostile copies of a run (markup in every string, links out of the folder, FIFOs, damaged
files) must give a page with nothing executable and nothing read from outside the folder.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from daedalus import api
from daedalus.api.report import write_report
from daedalus.cli import report_cmd
from daedalus.errors import DaedalusError, RunError
from tests.conftest import write

PROFILES = """
defaults: {total_steps: 512, num_steps: 64, eval_every_steps: 256, eval_episodes: 2, final_eval_episodes: 3, log_every_steps: 128}
tiny: {agent_id: ppo, env_id: CartPole-v1, num_envs: 2, config: {hidden_sizes: [8]}}
"""
# Enough of an MP4 for the report's check of the first bytes (the 'ftyp' box).
FAKE_MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two completed runs of one profile (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("report")
    write(root / "p.yaml", PROFILES)
    for seed in (0, 1):
        (result,) = api.train_many(root / "p.yaml", runs_dir=root / "runs", overrides=[f"seed={seed}"])
        assert result.status == "completed"
    return root / "runs"


@pytest.fixture
def run(runs: Path, tmp_path: Path) -> Path:
    """A copy of the seed-0 run, free to be damaged."""
    source = sorted(runs.glob("tiny-*"))[0]
    target = tmp_path / "copies" / source.name
    shutil.copytree(source, target)
    return target


class Page(HTMLParser):
    """The parts of a report the tests look at: tables (cell texts), tags and attributes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.texts: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag == "table":
            self.tables.append((dict(attrs).get("class") or "", []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, css: str) -> list[list[str]]:
        """Rows (header row first) of the first table of class ``css``."""
        return next(rows for name, rows in self.tables if name == css)

    def meta(self) -> dict[str, str]:
        """The run metadata table as {label: value}."""
        return {row[0]: row[1] for row in self.table("meta")}

    def sources(self) -> list[str]:
        return [value for _, name, value in self.attributes if name in ("src", "href")]


def _report(runs_: list[Path], tmp_path: Path, **kwargs: Any) -> tuple[str, Page]:
    path = write_report(runs_, tmp_path / "out" / "report.html", **kwargs)
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _assert_inert(text: str, page: Page, *, no_urls: bool = True) -> None:
    """Nothing in the page can run or load: no script, no event handler, only inline sources.

    ``no_urls``: not even as text (a hostile folder's strings may hold some, shown as text).
    """
    assert "script" not in page.tags and "iframe" not in page.tags and "object" not in page.tags
    assert not [a for a in page.attributes if a[1].startswith("on")]
    assert all(src.startswith(("data:", "#")) for src in page.sources())
    if no_urls:
        assert "http://" not in text and "https://" not in text
    (csp,) = [value for tag, name, value in page.attributes if tag == "meta" and name == "content" and "default-src" in value]
    assert "default-src 'none'" in csp and "script-src" not in csp


# --------------------------------------------------------------------------- the run's numbers


def test_the_page_holds_the_runs_own_numbers(run: Path, tmp_path: Path) -> None:
    (run / "videos").mkdir()
    (run / "videos" / "final-seed0.mp4").write_bytes(FAKE_MP4)
    before = _snapshot(run)
    text, page = _report([run], tmp_path)
    assert _snapshot(run) == before  # a report writes nothing into the run folder
    data = json.loads((run / "run.json").read_text())
    artifacts = json.loads((run / "artifacts.json").read_text())
    meta = page.meta()
    assert meta["run id"] == data["run_id"] == run.name and meta["status"] == "completed"
    assert (meta["profile"], meta["agent"], meta["env"], meta["seed"]) == ("tiny", "ppo", "CartPole-v1", "0")
    assert meta["steps"] == "512" and meta["best return"] == f"{data['best_return']:.2f}"
    assert meta["final return"] == f"{data['final_return']:.2f}"
    assert meta["duration"] == f"{data['duration_s']:.1f} s" and meta["created"].startswith(data["started_at_iso"][:10])
    # Periodic evaluations: one row each, in order, from artifacts.json.
    header, *rows = page.table("evaluations")
    assert header == ["step", "mean return", "std return", "training seconds"]
    assert rows == [
        [str(e["step"]), f"{e['mean_return']:.2f}", f"{e['std_return']:.2f}", f"{e['train_seconds']:.2f}"]
        for e in artifacts["evaluations"]
    ]
    assert [r[0] for r in rows] == ["256", "512"]
    # The final evaluation, from eval.json.
    final = json.loads((run / "eval.json").read_text())["latest"]
    (_, row) = page.table("final-evaluations")
    assert row[:7] == ["final", "3", f"{final['mean_return']:.2f}", f"{final['std_return']:.2f}",
                       f"{final['min_return']:.2f}", f"{final['max_return']:.2f}", f"{final['mean_length']:.1f}"]
    # The profile as written, escaped; the curves and the video inline.
    assert html.escape((run / "profile.yaml").read_text()) in text
    (curves,) = [s for s in page.sources() if s.startswith("data:image/png;base64,")]
    png = base64.b64decode(curves.split(",", 1)[1])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    (video,) = [value for tag, name, value in page.attributes if tag == "video" and name == "src"]
    assert base64.b64decode(video.split(",", 1)[1]) == FAKE_MP4 and video.startswith("data:video/mp4;base64,")
    assert "eval/mean_return" in text and "loss/policy" in text  # the caption names the curves drawn
    _assert_inert(text, page)


def test_several_runs_get_an_overview_with_their_curves_side_by_side(runs: Path, tmp_path: Path) -> None:
    ids = sorted(p.name for p in runs.glob("tiny-*"))
    # Ids resolve in runs_dir; a run named twice (by id and by path) is shown once.
    text, page = _report([ids[0], ids[1], runs / ids[1]], tmp_path, runs_dir=runs)
    header, *rows = page.table("")
    assert header[:3] == ["run", "profile", "agent"] and [r[0] for r in rows] == ids
    for row, run_id in zip(rows, ids, strict=True):
        data = json.loads((runs / run_id / "run.json").read_text())
        assert row[5:8] == ["512", f"{data['best_return']:.2f}", f"{data['final_return']:.2f}"]
    assert [value for tag, name, value in page.attributes if tag == "a"] == ["#run-1", "#run-2"]
    assert [value for tag, name, value in page.attributes if tag == "section" and name == "id"] == ["overview", "run-1", "run-2"]
    images = [s for s in page.sources() if s.startswith("data:image/png;base64,")]
    assert len(images) == 3  # the comparison and one set of curves per run
    assert "Periodic evaluations of each run" in text
    _assert_inert(text, page)


def test_a_running_run_whose_process_is_gone_shows_as_crashed_without_writing(run: Path, tmp_path: Path) -> None:
    data = json.loads((run / "run.json").read_text())
    data.update(status="running", host=socket.gethostname(), pid=2**31 - 1)
    (run / "run.json").write_text(json.dumps(data))
    before = _snapshot(run)
    text, page = _report([run], tmp_path)
    assert page.meta()["status"] == "crashed" and "its training process is gone" in text
    assert _snapshot(run) == before


# --------------------------------------------------------------------------- hostile folders


def test_every_string_from_the_folder_is_escaped(run: Path, tmp_path: Path) -> None:
    hostile = run.parent / "hostile-<script>alert(0)"  # a folder name holds no "/"
    run.rename(hostile)
    data = json.loads((hostile / "run.json").read_text())
    data.update(
        run_id=hostile.name, profile_id="<script>alert(1)</script>", env_id='"><img src=x onerror=alert(2)>',
        agent_id="<iframe src=https://evil.example>", stop_reason="</td><script>alert(3)</script>",
        status="failed", error={"type": "<b>", "message": "<script>alert(4)</script>", "traceback": "</pre><script>alert(5)</script>"},
        versions={"<i>": "<u onmouseover=alert(6)>"}, command=["<script>", "alert(7)"], host="<svg onload=alert(8)>",
        last_checkpoint="\ud800<b>",
    )
    (hostile / "run.json").write_text(json.dumps(data))
    profile = (hostile / "profile.yaml").read_text().replace("env_args: {}", "env_args: {name: '</pre><script>alert(9)</script>'}")
    (hostile / "profile.yaml").write_text(profile)
    artifacts = json.loads((hostile / "artifacts.json").read_text())
    artifacts["evaluations"] += [{"step": "<script>", "mean_return": "<img src=x onerror=alert(10)>"}, "<script>", 7]
    artifacts["final_evaluation_error"] = "<script>alert(11)</script>"
    (hostile / "artifacts.json").write_text(json.dumps(artifacts))
    saved = json.loads((hostile / "eval.json").read_text())
    saved["history"].append({"checkpoint": "<script>alert(12)</script>", "deterministic": "<b>", "mean_return": float("nan")})
    (hostile / "eval.json").write_text(json.dumps(saved))
    lines = (hostile / "metrics.csv").read_text().splitlines()
    (hostile / "metrics.csv").write_text("\n".join([lines[0] + ",loss/<script>"] + [line + ",1.0" for line in lines[1:]]) + "\n")
    (hostile / "videos").mkdir()
    (hostile / "videos" / "<img src=x onerror=alert(13)>.mp4").write_bytes(FAKE_MP4)

    text, page = _report([hostile], tmp_path)
    _assert_inert(text, page, no_urls=False)
    for n in (*range(10), 11, 12, 13):
        assert f"alert({n})" in text, n  # every string is shown ...
    assert "alert(10)" not in text  # (a string where a number belongs shows as "-")
    assert "<script" not in text.lower() and "<img src=x" not in text and "<iframe" not in text  # ... as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;/pre&gt;&lt;script&gt;alert(9)" in text
    meta = page.meta()
    assert meta["profile"] == "<script>alert(1)</script>" and meta["stop reason"] == "</td><script>alert(3)</script>"
    assert meta["host"] == "<svg onload=alert(8)>"
    assert meta["last checkpoint"] == "?<b>"  # a lone surrogate cannot be written as UTF-8
    assert "artifacts.json: 2 evaluation(s) are not objects" in text
    *_, bad = page.table("evaluations")
    assert bad == ["-", "-", "-", "-"]
    assert page.table("final-evaluations")[-1][:3] == ["<script>alert(12)</script>", "-", "nan"]


def test_files_linked_from_outside_and_special_files_are_never_read(run: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text("SECRET-KEY-MATERIAL\n")
    (secret / "leak.mp4").write_bytes(FAKE_MP4 + b"SECRET-VIDEO")
    (secret / "metrics.csv").write_text("step,charts/episode_return\n1,1\n2,2\n")
    for name, target in (("profile.yaml", secret / "id_rsa"), ("eval.json", Path("/dev/zero")), ("metrics.csv", secret / "metrics.csv")):
        (run / name).unlink()
        (run / name).symlink_to(target)
    (run / "artifacts.json").unlink()
    os.mkfifo(run / "artifacts.json")  # reading it would block forever
    (run / "videos").mkdir()
    (run / "videos" / "leak.mp4").symlink_to(secret / "leak.mp4")
    (run / "videos" / "own.mp4").write_bytes(FAKE_MP4)
    (run / "videos" / "same.mp4").symlink_to("own.mp4")  # a link inside the folder is fine

    text, page = _report([run], tmp_path)
    assert "SECRET" not in text and base64.b64encode(FAKE_MP4 + b"SECRET-VIDEO").decode() not in text
    for name in ("profile.yaml", "eval.json", "metrics.csv", "videos/leak.mp4"):
        assert f"{name} is a link to a file outside the run folder; it is not read." in text
    assert "artifacts.json is not a regular file; it is not read." in text
    videos = [value for tag, name, value in page.attributes if tag == "video" and name == "src"]
    assert len(videos) == 2 and all(base64.b64decode(v.split(",", 1)[1]) == FAKE_MP4 for v in videos)
    _assert_inert(text, page)


def test_a_run_folder_given_through_a_link_is_still_read(run: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-run"
    link.symlink_to(run)
    text, page = _report([link], tmp_path)
    assert page.meta()["run id"] == run.name and "data:image/png;base64," in text
    assert "a link to a file outside" not in text


def test_damaged_files_beside_run_json_become_notes(run: Path, tmp_path: Path) -> None:
    (run / "artifacts.json").write_text("[1, 2]")
    (run / "eval.json").write_text("[" * 100_000 + "]" * 100_000)
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join([lines[0], lines[1].replace(",", ",abc", 1)]) + "\n")
    (run / "profile.yaml").unlink()
    text, page = _report([run], tmp_path)
    for note in (
        "artifacts.json is not a JSON object; it is ignored.",
        "eval.json cannot be read (nested too deeply); it is ignored.",
        "The learning curves could not be drawn from metrics.csv (ValueError: could not convert string to float: &#x27;abc",
        "No periodic evaluations in artifacts.json",
        "No final evaluation",
        "No profile.yaml in this run folder.",
    ):
        assert note in text, note
    assert page.meta()["final return"] == f"{json.loads((run / 'run.json').read_text())['final_return']:.2f}"


def test_too_many_curves_and_a_csv_field_over_the_limit_are_notes(run: Path, tmp_path: Path) -> None:
    columns = ",".join(f"loss/x{i}" for i in range(41))
    (run / "metrics.csv").write_text(f"step,{columns}\n1,{','.join('1' for _ in range(41))}\n")
    text, _ = _report([run], tmp_path)
    assert "metrics.csv has 41 loss/* columns, more than the 40 curves a report draws" in text
    (run / "metrics.csv").write_text("step,charts/episode_return\n1," + "1" * 200_000 + "\n")
    text, _ = _report([run], tmp_path)
    assert "The learning curves could not be drawn from metrics.csv (Error: field larger than field limit" in text


def test_videos_over_the_cap_or_not_videos_are_noted_not_embedded(run: Path, tmp_path: Path) -> None:
    (run / "videos").mkdir()
    (run / "videos" / "big.mp4").write_bytes(FAKE_MP4 + bytes(5000))
    (run / "videos" / "small.mp4").write_bytes(FAKE_MP4)
    (run / "videos" / "fake.mp4").write_bytes(b"#!/bin/sh\necho not a video\n")
    (run / "videos" / "notes.txt").write_text("ignored: not a video suffix")
    text, page = _report([run], tmp_path, max_video_bytes=len(FAKE_MP4) + 100)
    assert "videos/big.mp4 is 5.9 KiB, more than the 1.1 KiB this report reads; it is left out." in text
    assert "videos/fake.mp4 is not a video/mp4 file (its first bytes say otherwise); it is not embedded." in text
    (video,) = [value for tag, name, value in page.attributes if tag == "video" and name == "src"]
    assert base64.b64decode(video.split(",", 1)[1]) == FAKE_MP4 and "notes.txt" not in text


def test_a_gif_replay_is_an_image(run: Path, tmp_path: Path) -> None:
    (run / "videos").mkdir()
    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    (run / "videos" / "replay.gif").write_bytes(gif)
    _, page = _report([run], tmp_path)
    assert f"data:image/gif;base64,{base64.b64encode(gif).decode()}" in page.sources()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "run.json: not valid JSON"),
        ("[1, 2]", "run.json: not a JSON object (the top level is a list)"),
        ('{"status": "completed", "started_at": 1.0, "steps": "many"}', "run.json: 'steps' is a string ('many'), expected an integer"),
    ],
)
def test_a_corrupt_run_json_is_one_clear_error(run: Path, tmp_path: Path, content: str, message: str) -> None:
    (run / "run.json").write_text(content)
    with pytest.raises(RunError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        write_report([run], tmp_path / "report.html")
    assert "\n" not in str(info.value) and not (tmp_path / "report.html").exists()


def test_a_run_json_linked_from_outside_is_not_read(run: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text((run / "run.json").read_text())
    (run / "run.json").unlink()
    (run / "run.json").symlink_to(outside)
    with pytest.raises(RunError, match=r"run.json is a link to a file outside the run folder; it is not read. The report cannot"):
        write_report([run], tmp_path / "report.html")


def test_unknown_runs_and_no_runs_are_clear_errors(runs: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no run 'nope'"):
        write_report(["nope"], tmp_path / "r.html", runs_dir=runs)
    with pytest.raises(RunError, match="matches several runs"):
        write_report(["tiny-"], tmp_path / "r.html", runs_dir=runs)
    with pytest.raises(DaedalusError, match="name at least one run"):
        write_report([], tmp_path / "r.html")
    (tmp_path / "folder.html").mkdir()
    with pytest.raises(DaedalusError, match=r"report: cannot write .*folder.html \(Is a directory\)"):
        write_report([runs / sorted(p.name for p in runs.glob("tiny-*"))[0]], tmp_path / "folder.html")


# --------------------------------------------------------------------------- CLI and import cost


def _cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """Root, so that ``report`` is a subcommand as in ``daedalus``."""

    report_cmd.register(app)
    return app


def test_cli_writes_the_report(runs: Path, tmp_path: Path) -> None:
    run_id = sorted(p.name for p in runs.glob("tiny-*"))[0]
    out = tmp_path / "r" / "page.html"
    result = CliRunner().invoke(_cli(), ["report", run_id, "-o", str(out), "--runs-dir", str(runs), "--smooth", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"report of 1 run -> {out} (")
    page = Page(out.read_text(encoding="utf-8"))
    assert page.meta()["run id"] == run_id and "trailing mean" not in out.read_text()
    broken = CliRunner().invoke(_cli(), ["report", "nope", "-o", str(out), "--runs-dir", str(runs)])
    assert isinstance(broken.exception, RunError)  # daedalus's main() prints it as one paragraph, exit 2


def test_importing_the_report_module_does_not_import_matplotlib() -> None:
    code = "import sys, daedalus.api.report, daedalus.cli.report_cmd; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
