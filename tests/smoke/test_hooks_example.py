"""examples/hooks: an early-stopping hook and a custom PPO loss, both by reference, through the CLI."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hooks"


def test_hooks_example_trains_through_the_cli(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "hooks")
    result = subprocess.run(
        [sys.executable, "-m", "daedalus", "train", "hooks/profiles.yaml", "--runs-dir", "runs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = {json.loads(p.read_text())["profile_id"]: p.parent for p in (tmp_path / "runs").glob("*/run.json")}

    early = json.loads((runs["cartpole_early_stop"] / "run.json").read_text())
    assert early["status"] == "completed" and early["steps"] < 200_000
    assert early["stop_reason"].startswith("evaluation ") and "reached a mean return of" in early["stop_reason"]
    evaluations = json.loads((runs["cartpole_early_stop"] / "artifacts.json").read_text())["evaluations"]
    assert evaluations[-1]["mean_return"] >= 475 and all(e["mean_return"] < 475 for e in evaluations[:-1])

    with open(runs["cartpole_kl_penalty"] / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    penalties = [float(r["loss/kl_penalty"]) for r in rows if r.get("loss/kl_penalty")]
    assert penalties and all(p >= 0 for p in penalties)
    assert "stop_reason" not in json.loads((runs["cartpole_kl_penalty"] / "run.json").read_text())
