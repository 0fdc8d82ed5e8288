"""``daedalus resume``: its pieces (env journal, metric continuation, TensorBoard purge, change
detection) and in-process resumes that must end bit-identical to an uninterrupted run.

The interruption is a real SIGTERM sent by the process to itself from a training hook, so the
run stops the way a scheduler's SIGTERM stops it (at the end of the current update). The
subprocess SIGTERM/SIGKILL versions for PPO, DQN and SAC are in tests/slow/test_resume_exact.py.
"""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import daedalus
from daedalus.cli.main import main
from daedalus.errors import RunError
from daedalus.rollout.journal import EnvJournal
from daedalus.tracking.metrics import CSVMetricWriter
from daedalus.tracking.tensorboard import TensorBoardWriter
from tests.conftest import write

PPO = """
ppo_cp:
  agent_id: ppo
  env_id: CartPole-v1
  num_envs: 4
  seed: 3
  config:
    total_steps: 6144
    num_steps: 64
    eval_every_steps: 2048
    eval_episodes: 2
    checkpoint_every_steps: 1024
    log_every_steps: 512
    torch_threads: 1
    final_eval_episodes: 0
    normalize_obs: true
"""

DQN = """
dqn_cp:
  agent_id: dqn
  env_id: CartPole-v1
  num_envs: 2
  seed: 5
  config:
    total_steps: 3000
    learning_starts: 500
    eval_every_steps: 1000
    eval_episodes: 2
    checkpoint_every_steps: 500
    log_every_steps: 250
    save_buffer: true
    torch_threads: 1
    final_eval_episodes: 0
"""


class SigtermAt:
    """Sends SIGTERM to this process once training passes ``step`` (the CLI's scheduler stop)."""

    def __init__(self, step: int) -> None:
        self.step, self.sent = step, False

    def on_rollout_end(self, info: daedalus.RolloutEnd) -> None:
        if not self.sent and info.step >= self.step:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


def weights(run: Path, checkpoint: str = "final") -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / checkpoint / "weights.safetensors"))


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def logged_steps(run: Path) -> list[int]:
    """Steps of the periodic log rows (one per log, evaluations add their own rows)."""
    return [int(r["step"]) for r in metric_rows(run) if r.get("charts/steps_per_second")]


def interrupted_then_resumed(profile_file: Path, runs_dir: Path, at_step: int) -> daedalus.RunResult:
    first = daedalus.train(profile_file, runs_dir=runs_dir, callbacks=[SigtermAt(at_step)])
    assert first.status == "interrupted"
    return daedalus.resume(first.path, runs_dir=runs_dir)


# --------------------------------------------------------------------------- exactness in-process


@pytest.mark.parametrize(("text", "at_step"), [(PPO, 2000), (DQN, 1200)], ids=["ppo", "dqn"])
def test_sigterm_then_resume_is_bit_identical_to_one_go(workdir: Path, text: str, at_step: int) -> None:
    profile_file = write(workdir / "p.yaml", text)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    resumed = interrupted_then_resumed(profile_file, workdir / "two", at_step)
    assert resumed.status == "completed" and resumed.steps == whole.steps
    assert_identical(weights(whole.path), weights(resumed.path))
    # The curve continues: the same log steps, none missing, none twice.
    assert logged_steps(resumed.path) == logged_steps(whole.path)
    # ... with the same numbers where they do not measure time.
    for a, b in zip(metric_rows(whole.path), metric_rows(resumed.path), strict=True):
        for key in a:
            if key.startswith(("loss/", "charts/episode_return", "eval/")):
                assert a[key] == b[key], (key, a["step"])
    # Evaluations: the same steps and returns; the training clock continues across the resume.
    evals_a = json.loads((whole.path / "artifacts.json").read_text())["evaluations"]
    evals_b = json.loads((resumed.path / "artifacts.json").read_text())["evaluations"]
    assert [(e["step"], e["mean_return"]) for e in evals_a] == [(e["step"], e["mean_return"]) for e in evals_b]
    seconds = [e["train_seconds"] for e in evals_b]
    assert seconds == sorted(seconds)
    record = json.loads((resumed.path / "run.json").read_text())
    assert record["status"] == "completed" and len(record["resumes"]) == 1
    assert record["resumes"][0]["exact"] is True
    assert record["resumes"][0]["at_step"] < whole.steps


def test_resume_from_an_older_snapshot_also_ends_identical(workdir: Path) -> None:
    """As after a SIGKILL: the run resumes from a periodic snapshot, not from its final save."""
    profile_file = write(workdir / "p.yaml", PPO)
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    # Copy the finished run and resume the copy from step-4096 (the original keeps its weights).
    import shutil

    copy = workdir / "two" / whole.path.name
    shutil.copytree(whole.path, copy)
    resumed = daedalus.resume(copy, runs_dir=workdir / "two", checkpoint="step-4096", total_steps=whole.steps)
    assert resumed.status == "completed"
    assert_identical(weights(whole.path), weights(resumed.path))
    assert logged_steps(resumed.path) == logged_steps(whole.path)


# --------------------------------------------------------------------------- extending and refusing


def test_extend_a_completed_run_with_total_steps(workdir: Path) -> None:
    profile_file = write(workdir / "p.yaml", PPO)
    first = daedalus.train(profile_file, runs_dir=workdir / "runs")
    with pytest.raises(RunError, match="nothing to resume.*--total-steps"):
        daedalus.resume(first.path, runs_dir=workdir / "runs")
    longer = daedalus.resume(first.path, runs_dir=workdir / "runs", total_steps=9000)
    assert longer.status == "completed" and longer.steps >= 9000
    steps = logged_steps(longer.path)
    assert steps == sorted(set(steps)) and steps[-1] == longer.steps
    assert "total_steps: 9000" in (longer.path / "profile.yaml").read_text()
    record = json.loads((longer.path / "run.json").read_text())
    assert record["resumes"][0]["total_steps"] == 9000


def test_a_changed_profile_or_code_is_named_and_refused_unless_forced(workdir: Path) -> None:
    profile_file = write(workdir / "p.yaml", PPO)
    run = daedalus.train(profile_file, runs_dir=workdir / "runs", callbacks=[SigtermAt(2000)]).path
    text = (run / "profile.yaml").read_text()
    (run / "profile.yaml").write_text(text.replace("gamma: 0.99", "gamma: 0.95"))
    with pytest.raises(RunError) as info:
        daedalus.resume(run, runs_dir=workdir / "runs")
    message = str(info.value)
    assert "profile.yaml was edited" in message and "--force" in message
    (run / "profile.yaml").write_text(text)
    code = json.loads((run / "code.json").read_text())
    code["files"]["daedalus/algos/ppo.py"] = "0" * 64
    code["versions"]["torch"] = "0.0.1"
    (run / "code.json").write_text(json.dumps(code))
    with pytest.raises(RunError, match=r"code changed: daedalus/algos/ppo\.py(.|\n)*torch 0\.0\.1 ->"):
        daedalus.resume(run, runs_dir=workdir / "runs")
    forced = daedalus.resume(run, runs_dir=workdir / "runs", force=True)
    assert forced.status == "completed"
    record = json.loads((run / "run.json").read_text())
    assert record["resumes"][0]["exact"] is False
    assert any("ppo.py" in change for change in record["resumes"][0]["forced_changes"])


def test_resume_refusals_are_one_clear_paragraph(workdir: Path) -> None:
    profile_file = write(workdir / "p.yaml", PPO)
    run = daedalus.train(profile_file, runs_dir=workdir / "runs", callbacks=[SigtermAt(2000)]).path
    # A run that is still training (its pid is alive: ours).
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "running", "pid": os.getpid()}))
    with pytest.raises(RunError, match="still training"):
        daedalus.resume(run, runs_dir=workdir / "runs")
    (run / "run.json").write_text(json.dumps(record))
    # An unknown checkpoint.
    with pytest.raises(RunError, match="checkpoint 'nope' cannot be resumed from"):
        daedalus.resume(run, runs_dir=workdir / "runs", checkpoint="nope")
    # Damaged random generator states in every checkpoint.
    for session in run.glob("checkpoints/*/session.json"):
        data = json.loads(session.read_text())
        data["rng"] = {"numpy": ["MT19937", "not numbers", 0, 0, 0.0]}
        session.write_text(json.dumps(data))
    with pytest.raises(RunError, match="random generator states are damaged"):
        daedalus.resume(run, runs_dir=workdir / "runs")


def test_a_journal_cut_short_is_a_clear_error(workdir: Path) -> None:
    profile_file = write(workdir / "p.yaml", PPO)
    run = daedalus.train(profile_file, runs_dir=workdir / "runs", callbacks=[SigtermAt(2000)]).path
    actions = run / "journal" / "actions.bin"
    actions.write_bytes(actions.read_bytes()[:100])
    with pytest.raises(RunError, match="cut short"):
        daedalus.resume(run, runs_dir=workdir / "runs")


def test_cli_resume(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile_file = write(workdir / "p.yaml", PPO)
    run = daedalus.train(profile_file, runs_dir=workdir / "runs", callbacks=[SigtermAt(2000)]).path
    main(["resume", run.name, "--runs-dir", str(workdir / "runs")])
    out = capsys.readouterr().out
    assert f"run {run.name}: resuming at step" in out and "completed after 6144 steps" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["resume", run.name, "--runs-dir", str(workdir / "runs")])
    assert exit_info.value.code == 2
    assert "nothing to resume" in capsys.readouterr().err


STEPWISE = '''
import json

import numpy as np


class Tally:
    """Counts what it memorized; saves that count as JSON."""

    def __init__(self, env_id="CartPole-v1"):
        self.seen = 0

    @staticmethod
    def get_default_parameters():
        return {}

    def act(self, obs, episode):
        return 0

    def memorize(self, obs, action, reward, next_obs, done):
        self.seen += 1

    def update(self, episode):
        pass

    def save(self):
        return json.dumps({"seen": self.seen}).encode()

    def load(self, data):
        self.seen = json.loads(data)["seen"]
'''


def test_stepwise_agent_resumes_at_its_next_episode(workdir: Path) -> None:
    write(workdir / "tally.py", STEPWISE)
    write(workdir / ".daedalus.yaml", "modules: []\n")
    profile_file = write(
        workdir / "p.yaml",
        """
        tally:
          agent_id: tally.py:Tally
          env_id: CartPole-v1
          seed: 1
          loop: {max_episodes: 12, episodes_per_checkpoint: 4, eval_episodes: 0}
        """,
    )
    whole = daedalus.train(profile_file, runs_dir=workdir / "one")
    import shutil

    copy = workdir / "two" / whole.path.name
    shutil.copytree(whole.path, copy)
    resumed = daedalus.resume(copy, runs_dir=workdir / "two", checkpoint="episode-8", trust_code=True)
    assert resumed.status == "completed"
    episodes = [int(float(r["charts/episodes"])) for r in metric_rows(resumed.path)]
    assert episodes == list(range(1, 13))  # episodes 9-12 after the resume, none repeated
    seen_whole = json.loads((whole.path / "checkpoints/final/agent.bin").read_text())["seen"]
    seen_resumed = json.loads((copy / "checkpoints/final/agent.bin").read_text())["seen"]
    assert seen_resumed == seen_whole


# --------------------------------------------------------------------------- pieces


def test_journal_records_flushes_and_cuts_to_a_checkpoint(tmp_path: Path) -> None:
    journal = EnvJournal(tmp_path / "journal")
    journal.record_reset(7)
    for step in range(5):
        journal.record(np.array([step, step + 10], dtype=np.int64))
    assert journal.flush() == 5
    assert (tmp_path / "journal/actions.bin").stat().st_size == 5 * 2 * 8
    reopened = EnvJournal.open_for_resume(tmp_path / "journal", 3)
    taken = reopened.take_replay()
    assert taken is not None
    resets, actions = taken
    assert resets == [{"at_step": 0, "seed": 7}]
    assert actions.tolist() == [[0, 10], [1, 11], [2, 12]]
    assert reopened.take_replay() is None  # replayed once
    assert (tmp_path / "journal/actions.bin").stat().st_size == 3 * 2 * 8  # later records dropped
    reopened.record(np.array([9, 9]))
    assert reopened.flush() == 4


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({"format": 1, "dtype": "object", "shape": [2], "resets": []}, "unsupported dtype"),
        ({"format": 1, "dtype": "int64", "shape": [-1], "resets": []}, "bad record shape"),
        ({"format": 1, "dtype": "int64", "shape": [2], "resets": [{"at_step": "x"}]}, "bad reset list"),
        ([1, 2, 3], "not a version-1 journal header"),
    ],
)
def test_a_hostile_journal_header_is_refused(tmp_path: Path, header: Any, match: str) -> None:
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal/header.json").write_text(json.dumps(header))
    with pytest.raises(RunError, match=match):
        EnvJournal.open_for_resume(tmp_path / "journal", 1)


def test_metrics_csv_continues_from_the_checkpoint_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    writer = CSVMetricWriter(path)
    for step in (10, 20, 30, 40):
        writer.log(step, {"loss/x": step / 10})
    writer.close()
    resumed = CSVMetricWriter(path, keep_until=20)
    resumed.log(30, {"loss/x": 3.5, "loss/new": 1.0})
    resumed.close()
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["step"], r["loss/x"]) for r in rows] == [("10", "1.0"), ("20", "2.0"), ("30", "3.5")]
    assert rows[-1]["loss/new"] == "1.0" and rows[0]["loss/new"] == ""


def test_tensorboard_drops_what_was_logged_after_the_checkpoint(tmp_path: Path) -> None:
    """Read back with TensorBoard's own loader: no step twice after a resume."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with TensorBoardWriter(tmp_path, flush_secs=0) as first:
        for step in range(1, 9):
            first.log(step, {"loss/x": float(step)})
    with TensorBoardWriter(tmp_path, flush_secs=0) as second:
        second.purge_after(5)
        for step in range(6, 11):
            second.log(step, {"loss/x": 100.0 + step})
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    events = accumulator.Scalars("loss/x")
    assert [e.step for e in events] == list(range(1, 11))
    assert [e.value for e in events] == [1, 2, 3, 4, 5, 106, 107, 108, 109, 110]
