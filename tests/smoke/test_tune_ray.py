"""``daedalus tune --backend ray`` on the real two-node Ray cluster of the ``ray_cluster`` fixture.

Every trial is a tiny PPO on CartPole (2 000 steps, 2 env copies, a 2-episode final evaluation),
so most of the time is Ray starting a fresh worker per trial. Trials pinned with
``resources={REMOTE_NODE: ...}`` run on the second node (another raylet and object store), so
their run folders really travel back to the driver as bytes. A local tune of the same space
is the reference for everything the command returns and writes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from daedalus.api.tune import TuneResult, tune
from daedalus.errors import DaedalusError
from daedalus.runs.store import list_runs
from tests.conftest import REMOTE_NODE, write
from tests.smoke.test_batch_ray import ENVS

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


#: A CartPole that counts the trials training at once: a file ``live-<pid>`` in ``folder`` while
#: a process's env is open. The first process to step waits (up to 20 s) until a second one is
#: live, so "two at a time" does not depend on how fast Ray starts workers; each process writes
#: how many it saw live when it went on.
MEET = """
import os
import time
from pathlib import Path

import gymnasium as gym


class Meet(gym.Wrapper):
    def __init__(self, env, folder):
        super().__init__(env)
        self.folder, self.started = Path(folder), False

    def live(self):
        return len(list(self.folder.glob("live-*")))

    def step(self, action):
        if not self.started:
            self.started = True
            (self.folder / f"live-{os.getpid()}").touch()
            deadline = time.monotonic() + 20
            while not (self.folder / "met").exists() and self.live() < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.live() >= 2:
                (self.folder / "met").touch()
            (self.folder / f"seen-{os.getpid()}").write_text(str(self.live()))
        return self.env.step(action)

    def close(self):
        (self.folder / f"live-{os.getpid()}").unlink(missing_ok=True)
        return super().close()


def make_env(folder):
    return Meet(gym.make("CartPole-v1"), folder)
"""


def profile(env: str = "CartPole-v1", env_args: dict[str, Any] | None = None) -> str:
    """A tiny tunable PPO profile ``tiny`` (CartPole, or the misbehaving CartPole of ENVS)."""
    return f"""
tiny:
  agent_id: ppo
  env_id: {env}
  env_args: {json.dumps(env_args or {})}
  num_envs: 2
  seed: 0
  rollout: {{vectorization: sync}}
  config: {{total_steps: 2000, num_steps: 64, eval_every_steps: 0, final_eval_episodes: 2,
            checkpoint_every_steps: 0, torch_threads: 1, log_every_steps: 1000}}
  tune:
    learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}
    update_epochs: {{int: [1, 3]}}
"""


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tasks get the driver's DAEDALUS_* settings: no learning-curve PNGs (matplotlib) per run.
    monkeypatch.setenv("DAEDALUS_PLOTS", "0")
    monkeypatch.setenv("DAEDALUS_PROGRESS", "plain")


def run_json(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "run.json").read_text()))


def files_of(folder: Path) -> set[str]:
    """Relative paths under ``folder`` (TensorBoard's event file names carry time, host and pid: cut)."""
    return {re.sub(r"tfevents\..*", "tfevents", p.relative_to(folder).as_posix()) for p in folder.rglob("*")}


def filled(trial: Any) -> set[str]:
    """The fields of a TrialSummary that hold something."""
    return {k for k, v in dataclasses.asdict(trial).items() if v not in (None, "", [], {})}


def test_trials_train_on_the_remote_node_two_at_a_time_and_match_a_local_tune(ray_cluster: Any, tmp_path: Path) -> None:
    import ray

    write(tmp_path / "meet.py", MEET)
    (tmp_path / "meet").mkdir()
    file = write(tmp_path / "tiny.yaml", profile("meet.py:make_env", {"folder": str(tmp_path / "meet")}))
    on_ray = tune(
        file, trials=4, runs_dir=tmp_path / "ray", backend="ray",
        cpus_per_trial=0.5, parallel_trials=2, resources={REMOTE_NODE: 0.5},
    )
    # Really 2 at once, and at most --parallel-trials at once although the node has room for 4.
    seen = sorted(int(p.read_text()) for p in (tmp_path / "meet").glob("seen-*"))
    assert (tmp_path / "meet" / "met").exists() and len(seen) == 4 and max(seen) == 2, seen
    local = tune(file, trials=1, runs_dir=tmp_path / "local")

    # Every trial completed; its one run came back into the driver's runs dir from the second node.
    assert on_ray.ran == 4 and on_ray.counts() == {"complete": 4}, [t.note for t in on_ray.trials]
    head = ray.get_runtime_context().get_node_id()
    for trial in on_ray.trials:
        (run_id,) = trial.run_ids
        folder = tmp_path / "ray" / run_id
        data = run_json(folder)
        assert data["status"] == "completed" and data["profile_id"] == f"tiny-t{trial.number}"
        assert data["batch_id"] == "tune-tiny" and data["ray"]["node_id"] != head and data["ray"]["attempt"] == 1
        assert data["path"] == str(folder.resolve()) and not Path(data["ray"]["temp_dir"]).exists()
        # The objective, as locally: the final evaluation's mean return (one seed: the mean of one).
        final = json.loads((folder / "eval.json").read_text())["latest"]["mean_return"]
        assert trial.seed_values == [final] and trial.value == pytest.approx(final)
        # The drawn values are the run's config.
        config = yaml.safe_load((folder / "profile.yaml").read_text())[data["profile_id"]]["config"]
        assert {k: config[k] for k in trial.values} == trial.values
    assert sorted(r["profile_id"] for r in list_runs(tmp_path / "ray", batch_id="tune-tiny")) == [f"tiny-t{n}" for n in range(4)]
    assert not list((tmp_path / "ray").glob(".incoming-*"))

    # The study holds the values the driver told it; the best trial is reported and written.
    stored = optuna.load_study(study_name="tiny", storage=f"sqlite:///{on_ray.storage}").get_trials()
    assert [(t.number, t.state.name, t.value) for t in stored] == [(t.number, "COMPLETE", t.value) for t in on_ray.trials]
    best = on_ray.best
    assert best is not None and best.value == max(t.value or 0.0 for t in on_ray.trials)
    assert on_ray.best_profile == tmp_path / "ray" / "tune" / "tiny-best.yaml"
    assert f"the best trial ({best.number}) of study 'tiny'" in on_ray.best_profile.read_text()

    # Same sampler seed, same first draw, same deterministic training: trial 0 scores as locally.
    assert on_ray.trials[0].values == local.trials[0].values
    assert on_ray.trials[0].value == pytest.approx(local.trials[0].value, abs=1e-6)
    # The same schema as a local tune: result, study attributes, files, run folders.
    assert filled(on_ray.trials[0]) == filled(local.trials[0])
    assert on_ray.table()[0] == local.table()[0]
    local_trial = optuna.load_study(study_name="tiny", storage=f"sqlite:///{local.storage}").get_trials()[0]
    assert stored[0].user_attrs.keys() == local_trial.user_attrs.keys()
    assert files_of(tmp_path / "ray" / "tune") == files_of(tmp_path / "local" / "tune") == {"tiny.db", "tiny-best.yaml"}
    assert local.best_profile is not None
    ray_best, local_best = (yaml.safe_load(p.read_text())["tiny-best"] for p in (on_ray.best_profile, local.best_profile))
    assert ray_best.keys() == local_best.keys() and ray_best["config"].keys() == local_best["config"].keys()
    ray_run, local_run = tmp_path / "ray" / on_ray.trials[0].run_ids[0], tmp_path / "local" / local.trials[0].run_ids[0]
    assert files_of(ray_run) == files_of(local_run)
    assert run_json(ray_run).keys() - run_json(local_run).keys() == {"ray"}


def test_a_trial_whose_worker_is_killed_is_retried_and_one_killed_twice_fails(ray_cluster: Any, tmp_path: Path) -> None:
    from daedalus.cli.main import app

    write(tmp_path / "envs.py", ENVS)
    once = write(tmp_path / "once.yaml", profile("envs.py:make_env", {"how": "kill_once", "marker": str(tmp_path / "killed")}))
    out = CliRunner().invoke(app, [
        "tune", str(once), "--trials", "1", "--backend", "ray", "--cpus-per-trial", "0.5", "--runs-dir", str(tmp_path / "runs"),
    ])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "killed").exists()  # the first attempt died
    assert "trial 0: the Ray task died (WorkerCrashedError" in out.output and "retrying once" in out.output
    assert "study 'tiny' (" in out.output and "): 1 complete" in out.output and "best: trial 0, mean " in out.output
    (run,) = list_runs(tmp_path / "runs", batch_id="tune-tiny")
    data = run_json(Path(run["path"]))
    assert data["status"] == "completed" and data["ray"]["attempt"] == 2
    assert "WorkerCrashedError" in data["ray"]["retried_after"][0]

    always = write(tmp_path / "always.yaml", profile("envs.py:make_env", {"how": "kill_always", "marker": str(tmp_path / "k2")}))
    result: TuneResult = tune(always, trials=1, study="always", backend="ray", cpus_per_trial=0.5, runs_dir=tmp_path / "runs")
    (trial,) = result.trials
    assert trial.state == "failed" and "died twice" in trial.note and trial.run_ids == [], trial
    stored = optuna.load_study(study_name="always", storage=f"sqlite:///{result.storage}").get_trials()
    assert [t.state for t in stored] == [optuna.trial.TrialState.FAIL]
    assert result.best is None and result.best_profile is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "slurm"}, "unknown tune backend 'slurm'"),
        ({"backend": "ray", "pruner": "median"}, "--pruner median is not available with --backend ray"),
        ({"backend": "ray", "parallel": 2}, "--parallel is for --backend local"),
        ({"backend": "ray", "cpus_per_trial": 0}, "--cpus-per-trial must be a number > 0"),
        ({"backend": "ray", "parallel_trials": 0}, "--parallel-trials must be an integer >= 1"),
        ({"parallel_trials": 2}, "--parallel-trials is for --backend ray"),
        ({"address": "10.0.0.1:6379"}, "--address is for --backend ray"),
    ],
)
def test_options_that_do_not_fit_the_backend_are_refused_before_anything_runs(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    file = write(tmp_path / "tiny.yaml", profile())
    with pytest.raises(DaedalusError, match=message):
        tune(file, trials=1, runs_dir=tmp_path / "runs", **kwargs)
    assert not (tmp_path / "runs").exists()
