"""Run folders: the fixed layout every run is saved in.

::

    runs/<profile>-<time>/
      run.json          status, versions, seed, host, timings, error
      profile.yaml      the resolved profile
      checkpoints/<name>/  weights.safetensors + state.json (built-in agents)
                           or agent.bin (a custom agent's save() bytes); meta.json
      metrics.csv       one row per logging step (TensorBoard events in tb/)
      artifacts.json    what the training wrapper put in ``artifacts``
      eval.json         evaluation results; videos/; plots/

Every file is written atomically; a checkpoint folder is built aside and renamed into
place, so a run killed at any moment keeps its last complete snapshot.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.errors import RunError
from daedalus.runs.index import RunIndex
from daedalus.runs.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json

RUN_FILE = "run.json"
PROFILE_FILE = "profile.yaml"
CHECKPOINTS = "checkpoints"
STATUSES = ("running", "completed", "interrupted", "failed", "crashed")


def versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on (only those already imported or cheap)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("daedalus", "gymnasium", "numpy", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class CheckpointInfo:
    """One checkpoint folder of a run."""

    name: str
    path: Path
    step: int
    format: str
    saved_at: float


class RunFolder:
    """One run's folder: status updates, checkpoints, artifacts, all kept in sync with the index."""

    def __init__(self, path: Path, index: RunIndex | None = None) -> None:
        self.path = Path(path)
        self.index = index or RunIndex(self.path.parent)

    # ------------------------------------------------------------------ creation and status

    @classmethod
    def create(
        cls,
        runs_dir: Path,
        profile_id: str,
        record: dict[str, Any],
        profile_yaml: str,
    ) -> RunFolder:
        """Make a new uniquely named folder, write ``profile.yaml`` and a ``running`` run.json."""
        runs_dir = Path(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in profile_id)
        for n in range(1, 10_000):
            name = f"{safe_id}-{stamp}" + (f"-{n}" if n > 1 else "")
            try:
                (runs_dir / name).mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - ten thousand runs of one profile in one second
            raise RunError(f"cannot create a run folder for '{profile_id}' in {runs_dir}.")
        folder = cls(runs_dir / name)
        atomic_write_text(folder.path / PROFILE_FILE, profile_yaml)
        now = time.time()
        base = {
            "run_id": name,
            "path": str(folder.path.resolve()),
            "profile_id": profile_id,
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": now,
            "started_at_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "finished_at": None,
            "duration_s": None,
            "steps": 0,
            "best_return": None,
            "final_return": None,
            "versions": versions(),
            "command": sys.argv,
        }
        base.update(record)
        folder._write(base)
        return folder

    @property
    def run_id(self) -> str:
        """The folder name, which is the run's id."""
        return self.path.name

    def read(self) -> dict[str, Any]:
        """The content of run.json."""
        try:
            data = read_json(self.path / RUN_FILE)
        except FileNotFoundError:
            raise RunError(f"{self.path}: not a run folder (no {RUN_FILE}).") from None
        except ValueError as exc:
            raise RunError(f"{self.path / RUN_FILE}: unreadable ({exc}).") from None
        if not isinstance(data, dict):
            raise RunError(f"{self.path / RUN_FILE}: unreadable (not a JSON object).")
        return data

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into run.json and the index."""
        data = self.read()
        data.update(fields)
        self._write(data)
        return data

    def finish(self, status: str, error: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Mark the run ``completed`` / ``interrupted`` / ``failed`` with its timings."""
        assert status in STATUSES, status
        data = self.read()
        now = time.time()
        data.update(fields)
        data.update(status=status, finished_at=now, duration_s=round(now - data["started_at"], 3))
        if error is not None:
            data["error"] = error
        self._write(data)
        return data

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.path / RUN_FILE, data)
        self.index.upsert(data)

    def refresh_status(self) -> dict[str, Any]:
        """run.json, with a ``running`` run whose process is gone marked ``crashed`` (and saved)."""
        data = self.read()
        if (
            data.get("status") == "running"
            and data.get("host") == socket.gethostname()
            and not pid_alive(data.get("pid"))
        ):
            data["status"] = "crashed"
            data.setdefault("error", {"type": "crashed", "message": "the training process disappeared (killed?)"})
            self._write(data)
        return data

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoints_dir(self) -> Path:
        """``<run>/checkpoints``."""
        return self.path / CHECKPOINTS

    def save_checkpoint(self, agent: Any, name: str, step: int) -> CheckpointInfo:
        """Snapshot ``agent`` into ``checkpoints/<name>``, replacing an older one atomically."""
        from daedalus.agents.base import TensorAgent, to_torch

        final = self.checkpoints_dir / name
        tmp = self.checkpoints_dir / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        meta: dict[str, Any] = {
            "name": name,
            "step": int(step),
            "saved_at": time.time(),
            "agent_class": f"{type(agent).__module__}:{type(agent).__qualname__}",
        }
        try:
            if isinstance(agent, TensorAgent):
                from safetensors.torch import save_file

                save_file(to_torch(agent.state_tensors()), str(tmp / "weights.safetensors"))
                atomic_write_json(tmp / "state.json", agent.state_json())
                meta["format"] = "safetensors"
            else:
                try:
                    blob = agent.save()
                except NotImplementedError:
                    blob = None
                if blob is None:
                    meta["format"] = "none"
                    meta["note"] = f"{type(agent).__name__} does not implement save(); nothing was saved."
                else:
                    if not isinstance(blob, bytes | bytearray | memoryview):
                        raise RunError(
                            f"{type(agent).__name__}.save() returned {type(blob).__name__}; it must return "
                            "bytes (e.g. pickle.dumps(state) or a safetensors blob)."
                        )
                    atomic_write_bytes(tmp / "agent.bin", bytes(blob))
                    meta["format"] = "bytes"
            atomic_write_json(tmp / "meta.json", meta)
            trash = None
            if final.exists():
                trash = self.checkpoints_dir / f".old-{name}-{uuid.uuid4().hex[:8]}"
                os.rename(final, trash)
            os.rename(tmp, final)
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return CheckpointInfo(name, final, int(step), meta["format"], meta["saved_at"])

    def checkpoints(self) -> list[CheckpointInfo]:
        """Complete checkpoints, oldest first (a folder orphaned mid-replacement counts as its name)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found: dict[str, CheckpointInfo] = {}
        for entry in sorted(self.checkpoints_dir.iterdir()):
            if entry.name.startswith(".tmp-") or not (entry / "meta.json").is_file():
                continue
            name = entry.name
            if name.startswith(".old-"):
                name = name[len(".old-") :].rsplit("-", 1)[0]
                if (self.checkpoints_dir / name / "meta.json").is_file():
                    continue
            try:
                meta = read_json(entry / "meta.json")
            except ValueError:
                continue
            found[name] = CheckpointInfo(name, entry, int(meta.get("step", 0)), meta.get("format", "?"), meta.get("saved_at", 0.0))
        return sorted(found.values(), key=lambda c: (c.saved_at, c.step))

    def checkpoint(self, name: str | None = None) -> CheckpointInfo:
        """The checkpoint called ``name``; by default ``final``, else the newest one."""
        available = self.checkpoints()
        if not available:
            raise RunError(
                f"{self.path}: the run has no checkpoint yet. Train it longer (checkpoints are written "
                "periodically and when training ends)."
            )
        if name is None:
            by_name = {c.name: c for c in available}
            return by_name.get("final") or available[-1]
        for info in available:
            if info.name == name:
                return info
        names = ", ".join(c.name for c in available)
        raise RunError(f"{self.path}: no checkpoint '{name}'. Available: {names}.")

    def prune(self, prefix: str, keep_last: int) -> None:
        """Keep only the ``keep_last`` newest checkpoints whose name starts with ``prefix``."""
        periodic = [c for c in self.checkpoints() if c.name.startswith(prefix)]
        for info in periodic[: max(0, len(periodic) - keep_last)]:
            shutil.rmtree(info.path, ignore_errors=True)

    # ------------------------------------------------------------------ other files

    def write_artifacts(self, artifacts: dict[str, Any]) -> None:
        """``artifacts.json``."""
        atomic_write_json(self.path / "artifacts.json", artifacts)

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``<run>/<name>`` atomically (eval.json, ...)."""
        target = self.path / name
        atomic_write_json(target, data)
        return target


def load_checkpoint_into(agent: Any, info: CheckpointInfo) -> Any:
    """Restore ``agent`` from a checkpoint folder; a damaged checkpoint is a clear RunError."""
    try:
        if info.format == "safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(info.path / "weights.safetensors"))
            state = read_json(info.path / "state.json")
            agent.load_state(tensors, state)
        elif info.format == "bytes":
            agent.load((info.path / "agent.bin").read_bytes())
        elif info.format == "none":
            pass
        else:
            raise RunError(f"{info.path}: unknown checkpoint format '{info.format}'.")
    except RunError:
        raise
    except Exception as exc:
        raise RunError(
            f"{info.path}: the checkpoint could not be loaded ({type(exc).__name__}: {exc}). It may be "
            "damaged or written by a different agent version; try another checkpoint with --checkpoint "
            "(daedalus runs show lists them)."
        ) from None
    return agent


def resolve_run(ref: str | Path, runs_dir: Path | None = None) -> RunFolder:
    """A run folder from a path, or a run id (or unique prefix) inside ``runs_dir``."""
    path = Path(ref)
    if (path / RUN_FILE).is_file():
        return RunFolder(path)
    base = Path(runs_dir or "runs")
    if (base / ref / RUN_FILE).is_file():
        return RunFolder(base / ref)
    matches = sorted(p for p in base.glob(f"{ref}*") if (p / RUN_FILE).is_file()) if base.is_dir() else []
    if len(matches) == 1:
        return RunFolder(matches[0])
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches[:10])
        raise RunError(f"'{ref}' matches several runs ({names}). Give the full run id or path.")
    raise RunError(f"no run '{ref}' (not a folder with {RUN_FILE}, nor a run id in {base}). 'daedalus runs list' shows the runs.")


def list_runs(runs_dir: Path, **filters: Any) -> list[dict[str, Any]]:
    """Run records from the index, with folders missing from it added and dead runs marked ``crashed``."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    index = RunIndex(runs_dir)
    known = {row["run_id"]: row for row in index.rows()}
    for folder in runs_dir.iterdir():
        if folder.name not in known and (folder / RUN_FILE).is_file():
            try:
                index.upsert(RunFolder(folder, index).read())
            except RunError:
                continue
    for run_id in known:
        if not (runs_dir / run_id / RUN_FILE).is_file():
            index.delete(run_id)
    out = []
    for row in index.rows(**filters):
        if row["status"] == "running":
            try:
                row = RunFolder(runs_dir / row["run_id"], index).refresh_status()
            except RunError:
                continue
            if filters.get("status") not in (None, row["status"]):
                continue
        out.append(row)
    return out
