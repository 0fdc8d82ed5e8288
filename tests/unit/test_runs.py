"""Run folders: atomic writes, the index under concurrent writers, checkpoints, crash detection."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daedalus.agents.base import Agent
from daedalus.errors import RunError
from daedalus.runs.index import RunIndex
from daedalus.runs.io import atomic_write_bytes, atomic_write_json
from daedalus.runs.store import RunFolder, list_runs, load_checkpoint_into, resolve_run


class BytesAgent(Agent):
    def __init__(self, value: bytes = b"") -> None:
        super().__init__("bytes")
        self.value = value

    def save(self) -> bytes:
        return self.value

    def load(self, agent_data: bytes) -> None:
        self.value = agent_data


def test_atomic_write_leaves_old_content_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write_json(target, {"a": 1})

    class Boom:
        def __len__(self) -> int:
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, Boom())  # type: ignore[arg-type]
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


def _writer(runs_dir: str, worker: int, count: int) -> None:
    index = RunIndex(Path(runs_dir))
    for i in range(count):
        index.upsert({"run_id": f"w{worker}-{i}", "path": "x", "status": "running", "started_at": float(i)})
        index.upsert({"run_id": f"w{worker}-{i}", "path": "x", "status": "completed", "started_at": float(i)})


def test_index_with_concurrent_writers(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 40)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    rows = RunIndex(tmp_path).rows()
    assert len(rows) == 160
    assert {r["status"] for r in rows} == {"completed"}
    assert RunIndex(tmp_path).rows(status="running") == []


def _new_run(runs_dir: Path, profile_id: str = "p") -> RunFolder:
    return RunFolder.create(runs_dir, profile_id, {"agent_id": "a", "env_id": "e"}, "p: {}\n")


def test_checkpoints_replace_and_prune(tmp_path: Path) -> None:
    folder = _new_run(tmp_path)
    for step in (10, 20, 30):
        folder.save_checkpoint(BytesAgent(f"s{step}".encode()), f"step-{step}", step)
    folder.save_checkpoint(BytesAgent(b"best1"), "best", 10)
    folder.save_checkpoint(BytesAgent(b"best2"), "best", 30)
    folder.prune("step-", 2)
    assert [c.name for c in folder.checkpoints()] == ["step-20", "step-30", "best"]
    agent = load_checkpoint_into(BytesAgent(), folder.checkpoint("best"))
    assert agent.value == b"best2"
    assert folder.checkpoint().name == "best"  # newest when there is no 'final'
    folder.save_checkpoint(BytesAgent(b"fin"), "final", 40)
    folder.save_checkpoint(BytesAgent(b"late"), "step-50", 50)
    assert folder.checkpoint().name == "final"
    with pytest.raises(RunError, match="no checkpoint 'nope'. Available: step-20"):
        folder.checkpoint("nope")


def test_checkpoint_survives_a_crash_between_renames(tmp_path: Path) -> None:
    folder = _new_run(tmp_path)
    folder.save_checkpoint(BytesAgent(b"old"), "step-1", 1)
    # Simulate SIGKILL after the old folder was moved aside and before the new one arrived.
    os.rename(folder.checkpoints_dir / "step-1", folder.checkpoints_dir / ".old-step-1-abcd1234")
    (folder.checkpoints_dir / ".tmp-step-1-ffff0000").mkdir()
    info = folder.checkpoint("step-1")
    assert load_checkpoint_into(BytesAgent(), info).value == b"old"


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from daedalus.agents.base import TensorAgent

    class Tiny(TensorAgent):
        def state_tensors(self):  # type: ignore[no-untyped-def]
            import torch

            return {"w": torch.ones(3)}

        def load_state(self, tensors, state):  # type: ignore[no-untyped-def]
            self.w = tensors["w"]

    folder = _new_run(tmp_path)
    info = folder.save_checkpoint(Tiny(), "final", 5)
    assert info.format == "safetensors"
    assert load_checkpoint_into(Tiny(), info).w.tolist() == [1.0, 1.0, 1.0]
    (info.path / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunError, match="could not be loaded .* try another checkpoint"):
        load_checkpoint_into(Tiny(), info)


def test_status_and_crash_detection(tmp_path: Path) -> None:
    done = _new_run(tmp_path, "done")
    done.finish("completed", steps=5)
    dead = _new_run(tmp_path, "dead")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead.update(pid=proc.pid)
    rows = {r["profile_id"]: r for r in list_runs(tmp_path)}
    assert rows["done"]["status"] == "completed" and rows["done"]["steps"] == 5
    assert rows["dead"]["status"] == "crashed"
    assert json.loads((dead.path / "run.json").read_text())["status"] == "crashed"
    assert [r["profile_id"] for r in list_runs(tmp_path, status="crashed")] == ["dead"]


def test_index_rebuilt_from_folders(tmp_path: Path) -> None:
    folder = _new_run(tmp_path)
    folder.finish("completed")
    (tmp_path / "index.sqlite").unlink()
    for extra in tmp_path.glob("index.sqlite-*"):
        extra.unlink()
    assert [r["run_id"] for r in list_runs(tmp_path)] == [folder.run_id]


def test_resolve_run(tmp_path: Path) -> None:
    folder = _new_run(tmp_path, "alpha")
    assert resolve_run(folder.path).path == folder.path
    assert resolve_run(folder.run_id, tmp_path).path == folder.path
    assert resolve_run("alph", tmp_path).path == folder.path
    with pytest.raises(RunError, match="no run 'zzz'"):
        resolve_run("zzz", tmp_path)
