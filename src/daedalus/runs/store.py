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
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.errors import RunError
from daedalus.runs.index import (
    CORRUPT,
    RunIndex,
    as_finite_float,
    check_field,
    is_clean_text,
    validate_record,
)
from daedalus.runs.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json

RUN_FILE = "run.json"
PROFILE_FILE = "profile.yaml"
#: In a checkpoint folder: what a resume needs besides the agent (JSON).
SESSION_FILE = "session.json"
CHECKPOINTS = "checkpoints"
STATUSES = ("running", "completed", "interrupted", "failed", "crashed", "imported")
_RESTORE = (
    "Restore run.json from a backup (or correct the value by hand), or delete the run folder "
    "if you no longer need it."
)
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Largest value a pid_t (a C int) can hold: os.kill() raises OverflowError beyond it.
_PID_MAX = 2**31 - 1
# Temporary checkpoint folders being written by this process right now: the clean-up of
# stale ones at the start of a save must not remove another thread's work in progress.
_WRITING: set[Path] = set()
_WRITING_LOCK = threading.Lock()


def versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on (only those already imported or cheap)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("daedalus", "gymnasium", "numpy", "torch"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    for package in ("pettingzoo", "mpe2"):  # multi-agent env packages, when this process uses them
        if package in sys.modules:
            with contextlib.suppress(PackageNotFoundError):
                out[package] = version(package)
    return out


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists on this machine.

    Anything but an int in 1..2**31-1 (a hand-edited run.json may hold a string, a huge
    number, 0 or -1, which would address a process group) names no process: False.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= _PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_file(path: Path) -> bool:
    # Path.is_file() raises on EACCES (an unreadable folder among the runs); such a path
    # is as good as absent for listing.
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_real_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block ends; they are delivered right after it.

    Only in the main thread, where Python runs signal handlers (elsewhere it is a no-op: a
    signal never raises in another thread). The handlers are swapped for one that notes the
    signal, and the noted signals are raised again once the previous handlers are back.
    ``pthread_sigmask`` alone is not enough: it blocks the main thread only, and the kernel
    hands a process-directed signal to any other thread (torch starts several), whose C
    handler still makes the main thread run the Python handler mid-block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in _HELD_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None:  # installed outside Python: it could not be put back
                continue
            # signal.signal() first runs the handlers of signals already pending, so this may
            # raise; it then raises before installing ``hold``, and ``previous`` stays right.
            signal.signal(signum, hold)
            previous[signum] = handler
        yield
    finally:
        _restore_handlers(previous)
        for noted in dict.fromkeys(pending):
            signal.raise_signal(noted)


def _restore_handlers(previous: dict[int, Any]) -> None:
    """Put every handler back, even when one that is back already raises for a new signal."""
    raised: BaseException | None = None
    for signum, handler in previous.items():
        for _ in range(100):
            try:
                signal.signal(signum, handler)
                break
            except BaseException as exc:  # a restored handler ran for a signal just arrived
                raised = raised or exc
    if raised is not None:
        raise raised


def _old_name(folder_name: str) -> str:
    """``step-10`` for ``.old-step-10-1a2b3c4d``: the checkpoint a moved-aside folder was."""
    return folder_name[len(".old-") :].rsplit("-", 1)[0]


def _remove_tree(path: Path) -> None:
    """Delete a folder with signals held back, so that a Ctrl-C cannot leave half of it."""
    try:
        with _signals_deferred():
            shutil.rmtree(path, ignore_errors=True)
    finally:
        # When a pending signal raised on entering the block, nothing was removed yet.
        shutil.rmtree(path, ignore_errors=True)


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
        """The content of run.json; a RunError saying what is wrong when it cannot be used."""
        data, reason = self._load()
        if reason is not None:
            raise RunError(f"{self.path / RUN_FILE}: {reason}. {_RESTORE}")
        return data

    def _load(self) -> tuple[Any, str | None]:
        """``(run.json object, None)``, or ``(None, why it is unreadable)``."""
        file = self.path / RUN_FILE
        try:
            data = read_json(file)
        except FileNotFoundError:
            raise RunError(f"{self.path}: not a run folder (no {RUN_FILE}).") from None
        except UnicodeDecodeError as exc:
            return None, f"not UTF-8 text ({exc})"
        except ValueError as exc:
            return None, f"not valid JSON ({exc})"
        except RecursionError:
            return None, "not valid JSON (nested too deeply to read)"
        except OSError as exc:
            return None, f"cannot be read ({type(exc).__name__}: {exc.strerror or exc})"
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
            return None, f"not a JSON object (the top level is {kind})"
        return data, None

    def _inspect(self) -> tuple[dict[str, Any] | None, dict[str, Any], list[str]]:
        """``(run.json or None, clean index row, problems)``; problems name no file."""
        data, reason = self._load()
        row, problems = validate_record(data, self.path)
        return data, row, ([reason] if reason is not None else problems)

    def describe_problems(self) -> list[str]:
        """What is wrong with this run's files, one sentence each naming the file and field.

        Covers run.json (unreadable, not an object, a field of the wrong type or out of
        range, a run id that is not the folder name) and checkpoints whose meta.json is
        damaged (those are left out of :meth:`checkpoints`). Empty when all is well.
        """
        try:
            _, _, problems = self._inspect()
        except RunError as exc:
            return [str(exc)]
        out = [f"{self.path / RUN_FILE}: {problem}." for problem in problems]
        return out + self._scan_checkpoints()[1]

    def index_record(self, indexed: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run's record for listings, with the index updated to match.

        The validated index row of run.json (every column of the index, each of its type or
        None); a ``running`` run whose process is gone is marked ``crashed`` first. When
        run.json is damaged, the record has ``status: "corrupt"`` and ``error: {"type":
        "corrupt", "message": ...}`` naming the file and field. ``indexed`` is the row the
        index holds, to skip a write when nothing changed.
        """
        data, row, problems = self._inspect()
        if problems:
            if indexed != row:
                self.index.upsert(data, self.path)
            message = f"{self.path / RUN_FILE}: {'; '.join(problems)}. {_RESTORE}"
            return {**row, "error": {"type": CORRUPT, "message": message}}
        assert data is not None
        if self._crashed(data):
            data = self._mark_crashed(data)  # also updates the index
            row, _ = validate_record(data, self.path)
        elif indexed != row:
            self.index.upsert(data, self.path)
        return row

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into run.json and the index."""
        data = self.read()
        data.update(fields)
        self._write(data)
        return data

    def reopen(self, resume: dict[str, Any]) -> dict[str, Any]:
        """Mark a stopped run ``running`` again for a resume; ``resume`` is appended to ``resumes``.

        The error and stop reason of the previous session are cleared; ``duration_s`` keeps
        counting only the time spent in sessions (see :meth:`finish`).
        """
        data = self.read()
        for key in ("error", "stop_reason"):
            data.pop(key, None)
        previous = as_finite_float(data.get("duration_s"))
        if previous is None:  # crashed: it never finished; count up to its last checkpoint
            started = as_finite_float(data.get("session_started_at", data.get("started_at")))
            saved = as_finite_float(resume.get("checkpoint_saved_at"))
            previous = (as_finite_float(data.get("previous_duration_s")) or 0.0) + (
                max(saved - started, 0.0) if started is not None and saved is not None else 0.0
            )
        now = time.time()
        resumes = data.get("resumes")
        resumes = list(resumes) if isinstance(resumes, list) else []
        data.update(
            status="running", pid=os.getpid(), host=socket.gethostname(), finished_at=None, duration_s=None,
            previous_duration_s=round(previous, 3), session_started_at=now, resumes=[*resumes, resume],
        )
        self._write(data)
        return data

    def finish(self, status: str, error: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Mark the run ``completed`` / ``interrupted`` / ``failed`` with its timings.

        ``duration_s`` is the wall time of the run's sessions: for a resumed run, the time
        before the resume plus this session's (not the time it lay stopped).
        """
        assert status in STATUSES, status
        data = self.read()
        now = time.time()
        data.update(fields)
        # A hand-edited run.json may hold anything here; the run still finishes.
        started = as_finite_float(data.get("session_started_at", data.get("started_at")))
        duration = round(now - started + (as_finite_float(data.get("previous_duration_s")) or 0.0), 3) if started is not None else None
        data.update(status=status, finished_at=now, duration_s=duration)
        if error is not None:
            data["error"] = error
        self._write(data)
        return data

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.path / RUN_FILE, data)
        self.index.upsert(data, self.path)

    def refresh_status(self) -> dict[str, Any]:
        """run.json, with a ``running`` run whose process is gone marked ``crashed`` (and saved).

        A run.json with damaged fields is returned as it is, never rewritten: what is wrong
        with it is in :meth:`describe_problems`. Raises RunError when it is unreadable.
        """
        data = self.read()
        _, problems = validate_record(data, self.path)
        if not problems and self._crashed(data):
            data = self._mark_crashed(data)
        return data

    @staticmethod
    def _crashed(data: dict[str, Any]) -> bool:
        """Whether a ``running`` run.json belongs to a process of this host that is gone."""
        host = data.get("host")
        return (
            data.get("status") == "running"
            and isinstance(host, str)
            and host == socket.gethostname()
            and not pid_alive(data.get("pid"))
        )

    def _mark_crashed(self, data: dict[str, Any]) -> dict[str, Any]:
        data = {**data, "status": "crashed"}
        message = "the training process disappeared (killed?)"
        data.setdefault("error", {"type": "crashed", "message": message})
        self._write(data)
        return data

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoints_dir(self) -> Path:
        """``<run>/checkpoints``."""
        return self.path / CHECKPOINTS

    def save_checkpoint(self, agent: Any, name: str, step: int, session: dict[str, Any] | None = None) -> CheckpointInfo:
        """Snapshot ``agent`` into ``checkpoints/<name>``, replacing an older one atomically.

        The new folder is built aside (``.tmp-*``) and swapped in with SIGINT/SIGTERM held
        back, so a Ctrl-C at any moment leaves exactly one complete ``<name>`` and no
        temporary folder. Leftovers of a killed process are removed first. ``session`` (JSON:
        what a resume needs besides the agent, see :mod:`daedalus.api.resume`) goes to
        ``session.json`` in the same folder.
        """
        from daedalus.agents.base import TensorAgent, to_torch

        self._remove_stale_folders()
        final = self.checkpoints_dir / name
        tmp = self.checkpoints_dir / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        with _WRITING_LOCK:
            _WRITING.add(tmp)
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
            if session is not None:
                atomic_write_json(tmp / SESSION_FILE, session)
            atomic_write_json(tmp / "meta.json", meta)
            with _signals_deferred():
                self._swap_in(tmp, final)
        except BaseException:
            _remove_tree(tmp)
            raise
        finally:
            with _WRITING_LOCK:
                _WRITING.discard(tmp)
        return CheckpointInfo(name, final, int(step), meta["format"], meta["saved_at"])

    def _swap_in(self, tmp: Path, final: Path) -> None:
        """Replace ``final`` by the complete folder ``tmp``; on failure ``final`` is as it was."""
        trash = None
        if final.exists():
            trash = self.checkpoints_dir / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
        try:
            os.rename(tmp, final)
        except BaseException:
            if trash is not None:
                # Put the previous snapshot back; should that fail too, checkpoints() still
                # finds it as the orphaned .old-* folder of this name.
                with contextlib.suppress(OSError):
                    os.rename(trash, final)
            raise
        for entry in self._entries():
            # The folder moved aside now, and any orphan of this name a killed process left.
            if entry.name.startswith(".old-") and _old_name(entry.name) == final.name:
                shutil.rmtree(entry, ignore_errors=True)

    def _entries(self) -> list[Path]:
        """The folders in ``checkpoints/`` (not symlinks), sorted; none when it is unreadable."""
        try:
            return sorted(e for e in self.checkpoints_dir.iterdir() if _is_real_dir(e))
        except OSError:
            return []

    def _remove_stale_folders(self) -> None:
        """Remove what a killed process left: ``.tmp-*`` folders, and ``.old-<name>-*`` ones
        whose ``<name>`` is complete (or that are incomplete themselves).

        One process writes a run's checkpoints, so a temporary folder not being written by
        this process right now is stale. An ``.old-*`` folder whose ``<name>`` is missing
        is the only copy of that checkpoint and stays (see :meth:`checkpoints`).
        """
        with _WRITING_LOCK:
            busy = set(_WRITING)
        for entry in self._entries():
            if entry.name.startswith(".tmp-") and entry not in busy:
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(".old-"):
                kept = self.checkpoints_dir / _old_name(entry.name) / "meta.json"
                if _is_file(kept) or not _is_file(entry / "meta.json"):
                    shutil.rmtree(entry, ignore_errors=True)

    def checkpoints(self) -> list[CheckpointInfo]:
        """Complete checkpoints, oldest first.

        A folder orphaned mid-replacement (``.old-<name>-*`` without ``<name>``) counts as
        ``<name>``.

        A checkpoint whose meta.json is unreadable or holds values of the wrong type is left
        out; :meth:`describe_problems` says which and why.
        """
        return self._scan_checkpoints()[0]

    def _scan_checkpoints(self) -> tuple[list[CheckpointInfo], list[str]]:
        """``(complete checkpoints oldest first, problems of damaged ones)``."""
        found: dict[str, CheckpointInfo] = {}
        problems: list[str] = []
        for entry in self._entries():
            if entry.name.startswith(".tmp-") or not _is_file(entry / "meta.json"):
                continue
            name = entry.name
            if name.startswith(".old-"):
                name = _old_name(name)
                if _is_file(self.checkpoints_dir / name / "meta.json"):
                    continue
            info, problem = _checkpoint_info(name, entry)
            if info is not None:
                found[name] = info
            elif problem is not None:
                problems.append(problem)
        return sorted(found.values(), key=lambda c: (c.saved_at, c.step)), problems

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


def _checkpoint_info(name: str, folder: Path) -> tuple[CheckpointInfo | None, str | None]:
    """A checkpoint from its meta.json, or ``(None, what is wrong with it)``."""
    file = folder / "meta.json"
    try:
        meta = read_json(file)
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"{file}: unreadable ({type(exc).__name__}); the checkpoint is ignored."
    if not isinstance(meta, dict):
        return None, f"{file}: not a JSON object; the checkpoint is ignored."
    # The defaults are those of checkpoints written before these fields existed.
    step, bad_step = check_field("step", meta.get("step", 0), "int")
    fmt, bad_format = check_field("format", meta.get("format", "?"), "text")
    saved_at, bad_time = check_field("saved_at", meta.get("saved_at", 0.0), "real")
    bad = [b for b in (bad_step, bad_format, bad_time) if b]
    if bad:
        return None, f"{file}: {'; '.join(bad)}; the checkpoint is ignored."
    return CheckpointInfo(name, folder, step, fmt, saved_at), None


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


def _plain_name(ref: str) -> bool:
    """Whether ``ref`` can be a run id: one folder name, no separator, not ``.`` or ``..``."""
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if not ref or ref in (".", "..") or "\0" in ref:
        return False
    return not any(sep in ref for sep in separators)


def resolve_run(ref: str | Path, runs_dir: Path | None = None) -> RunFolder:
    """A run folder from a path, or a run id (or unique prefix) inside ``runs_dir``.

    ``ref`` is taken as a path only when that path is a run folder; otherwise it must be a
    plain run id (no path separator, not ``..``), so it never reaches outside ``runs_dir``.
    """
    path = Path(ref)
    if _is_file(path / RUN_FILE):
        return RunFolder(path)
    base = Path(runs_dir or "runs")
    # Shell completion adds a trailing '/' to a folder name; that alone is still a run id.
    name = str(ref).rstrip("/" + os.sep) or str(ref)
    if not _plain_name(name):
        raise RunError(
            f"no run '{name}': it is not a run folder (no {RUN_FILE} there), and a run id is a "
            f"folder name in {base} (no '/' or '..'). 'daedalus runs list' shows the runs."
        )
    if _is_file(base / name / RUN_FILE):
        return RunFolder(base / name)
    try:
        # startswith, not glob: a run id with '*' or '[' must not act as a pattern.
        matches = sorted(
            p for p in base.iterdir() if p.name.startswith(name) and _is_file(p / RUN_FILE)
        )
    except OSError:
        matches = []
    if len(matches) == 1:
        return RunFolder(matches[0])
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches[:10])
        raise RunError(f"'{name}' matches several runs ({names}). Give the full run id or path.")
    raise RunError(
        f"no run '{name}' (not a folder with {RUN_FILE}, nor a run id in {base}). "
        "'daedalus runs list' shows the runs."
    )


def list_runs(runs_dir: Path, **filters: Any) -> list[dict[str, Any]]:
    """Run records, oldest first, each with every index column (see :func:`validate_record`).

    Folders missing from the index are added, dead ``running`` runs are marked ``crashed``,
    and a folder whose run.json is damaged is listed with ``status: "corrupt"`` and an
    ``error: {"type": "corrupt", "message": ...}`` naming the file and field, instead of
    breaking the listing. ``filters`` are index columns (``status="corrupt"`` lists the
    damaged runs).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    index = RunIndex(runs_dir)
    status = filters.pop("status", None)
    known = {row["run_id"]: row for row in index.rows()}
    present: set[str] = set()
    for folder in runs_dir.iterdir():
        # A folder name that is not UTF-8 cannot be a key in the index, nor be printed.
        if is_clean_text(folder.name) and _is_file(folder / RUN_FILE):
            present.add(folder.name)
    for run_id in sorted(present - known.keys()):
        try:
            RunFolder(runs_dir / run_id, index).index_record()
        except RunError:  # run.json deleted since the scan above
            continue
    for run_id in known.keys() - present:
        index.delete(run_id)
    out = []
    # The status filter is applied after the refresh below: a run indexed as running may
    # turn out crashed, and a corrupt one may have been repaired.
    for row in index.rows(**filters):
        if row["status"] in ("running", CORRUPT):
            try:
                row = RunFolder(runs_dir / row["run_id"], index).index_record(indexed=row)
            except RunError:  # run.json deleted since the scan above
                continue
            if any(v is not None and row.get(k) != v for k, v in filters.items()):
                continue
        if status is None or row["status"] == status:
            out.append(row)
    return out
