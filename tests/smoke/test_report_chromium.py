"""``daedalus report`` opened in a real browser: headless Chromium, offline, from a file.

Two real runs (one with a replay video recorded by ``daedalus replay``) are reported; a
test-only copy of the page gets a small script that, once the page has loaded, writes into
the DOM how many images decoded, each video's readyState, duration and size, and the text
of every table cell as the browser parsed it. ``--dump-dom`` hands the DOM back.

Debian's Chromium decodes the H.264 MP4s that imageio-ffmpeg writes. A Chromium built
without proprietary codecs cannot (its video reports MEDIA_ERR_SRC_NOT_SUPPORTED, code 4),
and this test then fails saying so: users of such a browser would see an empty player.

The page itself must stay inert: the same script injected into the unmodified page is
blocked by its Content-Security-Policy.

Skipped only when no Chromium is installed (``make test`` installs Debian's when root).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from daedalus import api
from daedalus.api.report import write_report
from tests.conftest import write

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no /usr/bin/chromium: the report is not rendered ('make test' installs it as root; or apt-get install chromium)")

PROFILES = """
defaults: {total_steps: 512, num_steps: 64, eval_every_steps: 256, eval_episodes: 2, final_eval_episodes: 3}
tiny: {agent_id: ppo, env_id: CartPole-v1, num_envs: 2, config: {hidden_sizes: [8]}}
"""

# Runs on load: waits for every video's metadata (or error), then writes what it found.
PROBE = """<script>
window.addEventListener("load", async () => {
  const videos = [...document.querySelectorAll("video")];
  await Promise.all(videos.map(v => v.readyState >= 1 || v.error ? null : new Promise(done => {
    v.addEventListener("loadedmetadata", done); v.addEventListener("error", done); setTimeout(done, 4000);
  })));
  const images = [...document.images];
  const body = document.body.dataset;
  body.images = images.length;
  body.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  body.videos = JSON.stringify(videos.map(v => ({readyState: v.readyState, duration: v.duration, width: v.videoWidth, error: v.error && v.error.code})));
  body.tables = JSON.stringify([...document.querySelectorAll("table")].map(t => ({
    css: t.className, section: t.closest("section") ? t.closest("section").id : "",
    rows: [...t.rows].map(r => [...r.cells].map(c => c.textContent.trim()))})));
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A report of two runs, the first with a replay video."""
    root = tmp_path_factory.mktemp("report-chromium")
    write(root / "p.yaml", PROFILES)
    runs = []
    for seed in (0, 1):
        (result,) = api.train_many(root / "p.yaml", runs_dir=root / "runs", overrides=[f"seed={seed}"])
        assert result.status == "completed"
        runs.append(result.path)
    _, video = api.replay(runs[0])
    assert video.suffix == ".mp4" and video.parent == runs[0] / "videos"
    return write_report(runs, root / "report.html"), runs


def _render(page: Path) -> dict[str, Any]:
    """The body's data-* attributes after Chromium loaded ``page`` (a file, no network)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=180,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", result.stdout)
    assert body is not None, result.stdout[:2000]
    return {name: html.unescape(value) for name, value in re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))}


def _probed_copy(page: Path, target: Path, allow_script: bool) -> Path:
    text = page.read_text(encoding="utf-8")
    if allow_script:
        assert text.count("default-src 'none';") == 1
        text = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    target.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    return target


def test_every_image_and_the_video_load_and_the_tables_hold_the_numbers(report: tuple[Path, list[Path]], tmp_path: Path) -> None:
    page, runs = report
    found = _render(_probed_copy(page, tmp_path / "probed.html", allow_script=True))
    # The comparison plot and each run's learning curves.
    assert found["images"] == "3" and found["images-loaded"] == "3"
    (video,) = json.loads(found["videos"])
    assert video["error"] is None, f"Chromium cannot play the replay video (MediaError code {video['error']}): no H.264 decoder?"
    assert video["readyState"] >= 1 and video["duration"] > 0 and video["width"] == 600  # CartPole renders 600x400
    tables = json.loads(found["tables"])
    for index, run in enumerate(runs, 1):
        mine = {t["css"]: t["rows"] for t in tables if t["section"] == f"run-{index}"}
        data = json.loads((run / "run.json").read_text())
        meta = dict(row for row in mine["meta"])
        assert meta["run id"] == run.name and meta["status"] == "completed" and meta["steps"] == "512"
        assert meta["best return"] == f"{data['best_return']:.2f}" and meta["final return"] == f"{data['final_return']:.2f}"
        evaluations = json.loads((run / "artifacts.json").read_text())["evaluations"]
        assert mine["evaluations"][1:] == [
            [str(e["step"]), f"{e['mean_return']:.2f}", f"{e['std_return']:.2f}", f"{e['train_seconds']:.2f}"] for e in evaluations
        ]
        final = json.loads((run / "eval.json").read_text())["latest"]
        assert mine["final-evaluations"][1][:3] == ["final", "3", f"{final['mean_return']:.2f}"]
    (overview,) = [t["rows"] for t in tables if t["section"] == "overview"]
    assert [row[0] for row in overview[1:]] == [run.name for run in runs]


def test_the_page_runs_no_script(report: tuple[Path, list[Path]], tmp_path: Path) -> None:
    page, _ = report
    found = _render(_probed_copy(page, tmp_path / "blocked.html", allow_script=False))
    assert "images" not in found and "tables" not in found  # the Content-Security-Policy blocked it
