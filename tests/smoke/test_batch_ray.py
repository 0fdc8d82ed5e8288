"""``daedalus batch --backend ray`` on a real two-node Ray cluster (the ``ray_cluster`` fixture).

Every profile is a tiny PPO on CartPole (2 000 steps, 2 env copies, no evaluation), so a run
takes a second or two; most of the time here is Ray starting a fresh worker per profile.
Tasks pinned with ``resources={REMOTE_NODE: 1}`` run on the second node: another raylet
and object store, so the run folders really travel back to the driver as bytes.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from daedalus.api.batch import batch
from daedalus.api.ray_batch import pack_run, unpack_run
from daedalus.errors import DaedalusError, MissingDependencyError
from daedalus.runs.store import list_runs
from tests.conftest import REMOTE_NODE, write

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TINY = """
defaults: {total_steps: 2000, num_steps: 64, eval_every_steps: 0, final_eval_episodes: 0,
           torch_threads: 1, log_every_steps: 500}
"""

#: A CartPole whose first env copy misbehaves at its 300th step: the worker process kills
#: itself (once, guarded by a marker file, or every time), or the env raises.
ENVS = '''
import os
import signal
from pathlib import Path

import gymnasium as gym


class Misbehave(gym.Wrapper):
    def __init__(self, env, how, marker, at_step):
        super().__init__(env)
        self.how, self.marker, self.at_step, self.steps = how, Path(marker), at_step, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.at_step:
            if self.how == "raise":
                raise RuntimeError("the env broke at step 300")
            if self.how == "kill_always" or not self.marker.exists():
                self.marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        return self.env.step(action)


def make_env(how="none", marker="", at_step=300):
    return Misbehave(gym.make("CartPole-v1"), how, marker, at_step)
'''


def profile(name: str, how: str | None = None, marker: Path | None = None, seed: int = 0) -> str:
    """One tiny PPO profile (CartPole, or the misbehaving CartPole of ENVS)."""
    env = "CartPole-v1" if how is None else "envs.py:make_env"
    args = "{}" if how is None else json.dumps({"how": how, "marker": str(marker)})
    return f"""
{name}:
  agent_id: ppo
  env_id: {env}
  env_args: {args}
  num_envs: 2
  seed: {seed}
  rollout: {{vectorization: sync}}
"""


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tasks get the driver's DAEDALUS_* settings: no learning-curve PNGs (matplotlib) per run.
    monkeypatch.setenv("DAEDALUS_PLOTS", "0")
    monkeypatch.setenv("DAEDALUS_PROGRESS", "plain")


def run_json(path: Path) -> dict[str, Any]:
    return json.loads((path / "run.json").read_text())


def test_runs_on_the_remote_node_come_back_into_the_drivers_runs_dir(ray_cluster: Any, tmp_path: Path) -> None:
    import ray

    file = write(tmp_path / "profiles.yaml", TINY + profile("alpha") + profile("beta", seed=1))
    runs_dir = tmp_path / "runs"
    result = batch(file, runs_dir=runs_dir, backend="ray", resources={REMOTE_NODE: 1})

    assert result.ok, result.results
    assert [r.profile_id for r in result.results] == ["alpha", "beta"]
    head = ray.get_runtime_context().get_node_id()
    for r in result.results:
        assert r.path == runs_dir / r.run_id and r.path.is_dir()
        data = run_json(r.path)
        assert data["status"] == "completed" and data["steps"] >= 2000 and data["batch_id"] == result.batch_id
        assert data["run_id"] == r.run_id and data["path"] == str(r.path.resolve())
        assert data["ray"]["node_id"] != head and data["ray"]["attempt"] == 1
        # The task's temporary folder on the node is gone; nothing of it is referenced any more.
        temp_dir = Path(data["ray"]["temp_dir"])
        assert temp_dir.name.startswith("daedalus-ray-") and not temp_dir.exists()
        assert "daedalus-ray-" not in (r.path / "profile.yaml").read_text()
        assert (r.path / "profile.yaml").is_file() and (r.path / "metrics.csv").stat().st_size > 0
        assert (r.path / "checkpoints" / "final" / "meta.json").is_file()
        assert list((r.path / "checkpoints" / "final").glob("*.safetensors"))
        assert r.steps == data["steps"] and r.final_return == data["final_return"]
    rows = list_runs(runs_dir, batch_id=result.batch_id)
    assert sorted(row["profile_id"] for row in rows) == ["alpha", "beta"]
    assert all(row["status"] == "completed" and Path(row["path"]).parent == runs_dir.resolve() for row in rows)
    assert not list(runs_dir.glob(".incoming-*"))


def test_a_killed_task_is_retried_once_and_a_failing_profile_is_not(ray_cluster: Any, tmp_path: Path) -> None:
    file = write(
        tmp_path / "profiles.yaml",
        TINY + profile("once", "kill_once", tmp_path / "killed-once")
        + profile("always", "kill_always", tmp_path / "killed-always")
        + profile("broken", "raise", tmp_path / "unused"),
    )
    write(tmp_path / "envs.py", ENVS)
    runs_dir = tmp_path / "runs"
    result = batch(file, runs_dir=runs_dir, backend="ray", resources={REMOTE_NODE: 1})

    once, always, broken = result.results
    assert not result.ok
    # Killed on its first attempt (the marker says so), completed on the retry.
    assert (tmp_path / "killed-once").exists()
    assert once.status == "completed", once.error
    data = run_json(once.path)
    assert data["ray"]["attempt"] == 2 and "WorkerCrashedError" in data["ray"]["retried_after"][0]
    assert not Path(data["ray"]["temp_dir"]).exists()
    # Its profile and code fingerprint name the driver's envs.py, not the node's copy (resume works here).
    assert f"{(tmp_path / 'envs.py').resolve()}:make_env" in (once.path / "profile.yaml").read_text()
    assert "daedalus-ray-" not in (once.path / "code.json").read_text() + (once.path / "profile.yaml").read_text()
    # Killed on both attempts: failed, with the reasons, and no run folder.
    assert always.status == "failed" and always.run_id == "-"
    assert always.error is not None and "died twice" in always.error and "WorkerCrashedError" in always.error
    # An ordinary training error: not retried, its failed run folder comes back like a local one.
    assert broken.status == "failed" and broken.error is not None and "the env broke" in broken.error
    assert run_json(broken.path)["ray"]["attempt"] == 1 and run_json(broken.path)["status"] == "failed"
    statuses = {row["profile_id"]: row["status"] for row in list_runs(runs_dir, batch_id=result.batch_id)}
    assert statuses == {"once": "completed", "broken": "failed"}
    # The killed attempts' temporary folders were cleaned up by the retries on the same node.
    assert not list(Path(data["ray"]["temp_dir"]).parent.glob(f"daedalus-ray-{result.batch_id}-*"))


def table(output: str) -> list[list[str]]:
    """The summary table's rows (split on two or more spaces), time and run columns left out."""
    import re

    lines = [line for line in output.splitlines() if line.startswith(("profile", "ok", "broken"))]
    return [re.split(r"\s{2,}", line.strip())[:3] for line in lines]


def test_cli_exit_code_and_table_match_a_local_batch(ray_cluster: Any, tmp_path: Path) -> None:
    from daedalus.cli.main import app

    write(tmp_path / "envs.py", ENVS)
    good = write(tmp_path / "good.yaml", TINY + profile("ok") + profile("ok2", seed=1))
    mixed = write(tmp_path / "mixed.yaml", TINY + profile("ok") + profile("broken", "raise", tmp_path / "unused"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["batch", *args, "--runs-dir", str(tmp_path / "runs")])

    done = run(str(good), "--backend", "ray", "--cpus-per-run", "1")
    assert done.exit_code == 0, done.output
    on_ray = run(str(mixed), "--backend", "ray")
    local = run(str(mixed))
    assert on_ray.exit_code == local.exit_code == 1, on_ray.output + local.output
    assert table(on_ray.output) == table(local.output)
    assert table(on_ray.output)[0] == ["profile", "status", "steps"]
    assert [row[:2] for row in table(on_ray.output)[1:]] == [["ok", "completed"], ["broken", "failed"]]


def test_missing_ray_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daedalus.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    file = write(tmp_path / "profiles.yaml", TINY + profile("alpha"))
    with pytest.raises(MissingDependencyError, match=r"pip install 'daedalus\[ray\]'"):
        batch(file, runs_dir=tmp_path / "runs", backend="ray")
    with pytest.raises(SystemExit) as exit_:
        main(["batch", str(file), "--backend", "ray", "--runs-dir", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ray" in err and "pip install 'daedalus[ray]'" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "slurm"}, "unknown batch backend 'slurm'"),
        ({"backend": "ray", "parallel": 2}, "--parallel is for --backend local"),
        ({"backend": "ray", "cpus_per_run": 0}, "--cpus-per-run must be a number > 0"),
        ({"address": "10.0.0.1:6379"}, "--address is for --backend ray"),
    ],
)
def test_bad_backend_options_are_refused_before_anything_runs(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    file = write(tmp_path / "profiles.yaml", TINY + profile("alpha"))
    with pytest.raises(DaedalusError, match=message):
        batch(file, runs_dir=tmp_path / "runs", **kwargs)
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- archives


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "bad",
    [
        (member("/etc/evil"), b"x"),
        (member("run-1/../../evil"), b"x"),
        (member("other/run.json"), b"{}"),
        (member("run-1/link", tarfile.SYMTYPE, "/etc/passwd"), None),
        (member("run-1/hard", tarfile.LNKTYPE, "run-1/run.json"), None),
        (member("run-1/dev", tarfile.CHRTYPE), None),
        (member("run-1/fifo", tarfile.FIFOTYPE), None),
    ],
)
def test_unpack_refuses_anything_outside_the_folder_or_not_plain(tmp_path: Path, bad: tuple[tarfile.TarInfo, bytes | None]) -> None:
    data = archive((member("run-1/run.json"), b'{"run_id": "run-1"}'), bad)
    with pytest.raises(DaedalusError, match="refusing the run folder archive"):
        unpack_run(data, "run-1", tmp_path / "runs")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == []
    assert not (tmp_path / "evil").exists()


def test_pack_refuses_symlinks_and_unpack_never_overwrites(tmp_path: Path) -> None:
    folder = write(tmp_path / "node" / "run-1" / "run.json", '{"run_id": "run-1"}').parent
    write(folder / "checkpoints" / "final" / "meta.json", "{}")
    data = pack_run(folder)
    runs_dir = tmp_path / "runs"
    first, second = unpack_run(data, "run-1", runs_dir), unpack_run(data, "run-1", runs_dir)
    assert (first.name, second.name) == ("run-1", "run-1-2")
    assert (second / "checkpoints" / "final" / "meta.json").read_text() == "{}"
    (folder / "link").symlink_to(tmp_path)
    with pytest.raises(DaedalusError, match="is a symlink"):
        pack_run(folder)
