"""The env journal: every action sent to the training envs, so that a resumed run finds them exactly as they were.

Environments have no portable way to save their state (a native vector env, a MuJoCo
simulator and a subprocess all hold it differently), but a Gymnasium env is a deterministic
function of its reset seed and the actions it was given. So a run records, per vector step,
the env-ready actions of every row (``journal/actions.bin``: raw little-endian records of one
dtype and shape) and the resets with their seeds (``journal/header.json``). A resume rebuilds
the envs, resets them with the recorded seed and steps the first ``steps`` records again
(no policy, no learning): the observations, episode progress, wrapper counters and env RNGs are
then those of the interrupted run at its checkpoint.

The journal is plain numbers and JSON: reading one never unpickles or executes anything, and a
malformed journal is a clear :class:`~daedalus.errors.RunError`.

Cost: one copy of each action array per step, written in blocks of 2,048 steps; on disk
``vector steps x rows x action size`` bytes (CartPole, 8 envs, 1M env steps of int64 actions: 8 MB).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from daedalus.errors import RunError

__all__ = ["EnvJournal"]

_FORMAT = 1
#: Dtypes an action record may have (anything else in a header is refused).
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"}
_FLUSH_EVERY = 2048


class EnvJournal:
    """Records the actions and resets of one run's training envs, and replays them on resume.

    ``folder`` is ``<run>/journal``. :meth:`record_reset` and :meth:`record` are called by the
    rollout source; :meth:`flush` by the session before each checkpoint, whose ``steps`` it
    stores. :meth:`open_for_resume` reads a journal back, keeping its first ``steps`` records.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.steps = 0  # vector steps recorded (written or pending)
        self.resets: list[dict[str, Any]] = []  # {"at_step": n, "seed": s}
        self.dtype: str | None = None
        self.shape: tuple[int, ...] | None = None
        self._pending: list[np.ndarray] = []
        self._written = 0
        #: Records a resume must step again before training continues (set by open_for_resume).
        self.replay: np.ndarray | None = None

    # ------------------------------------------------------------------ recording

    def record_reset(self, seed: int | None) -> None:
        """The envs were reset (with ``seed``) after :attr:`steps` steps."""
        self.resets.append({"at_step": self.steps, "seed": seed})
        self._write_header()

    def record(self, actions: Any) -> None:
        """One vector step's env-ready actions (copied)."""
        array = np.array(actions, copy=True)
        if self.dtype is None:
            if array.dtype.name not in _DTYPES:
                raise RunError(
                    f"the env journal cannot record actions of dtype {array.dtype} (exact resume needs plain "
                    "numeric actions)."
                )
            self.dtype, self.shape = array.dtype.name, tuple(int(n) for n in array.shape)
            self._write_header()
        self._pending.append(array)
        self.steps += 1
        if len(self._pending) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> int:
        """Write pending records to disk; returns :attr:`steps` (what a checkpoint taken now can replay)."""
        if self._pending:
            data = np.stack(self._pending).astype(self.dtype, copy=False).astype(np.dtype(self.dtype).newbyteorder("<"), copy=False)
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / "actions.bin", "ab") as handle:
                handle.write(data.tobytes())
            self._written += len(self._pending)
            self._pending.clear()
        return self.steps

    def _write_header(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        header = {"format": _FORMAT, "dtype": self.dtype, "shape": list(self.shape) if self.shape else None, "resets": self.resets}
        tmp = self.folder / "header.json.tmp"
        tmp.write_text(json.dumps(header), encoding="utf-8")
        os.replace(tmp, self.folder / "header.json")

    # ------------------------------------------------------------------ resuming

    @classmethod
    def open_for_resume(cls, folder: str | Path, steps: int) -> EnvJournal:
        """The journal of an interrupted run, cut to its first ``steps`` records (what a checkpoint saw).

        Records after ``steps`` (written after the checkpoint by a run that was then killed) are
        removed from disk, so the resumed run appends where the checkpoint left off.
        """
        journal = cls(folder)
        header_path = journal.folder / "header.json"
        if steps == 0 and not header_path.exists():
            return journal
        try:
            header = json.loads(header_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"{header_path}: the env journal cannot be read ({exc}); this run cannot be resumed exactly.") from None
        dtype, shape, resets = _check_header(header, header_path)
        journal.resets = [r for r in resets if r["at_step"] <= steps]
        if steps == 0:
            journal.replay = np.zeros((0,), dtype=np.int64)
            journal._write_header()
            return journal
        if dtype is None or shape is None:
            raise RunError(f"{header_path}: the journal holds no action records but the checkpoint needs {steps}.")
        journal.dtype, journal.shape = dtype, shape
        record_bytes = int(np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))
        path = journal.folder / "actions.bin"
        size = path.stat().st_size if path.exists() else 0
        if size < steps * record_bytes:
            raise RunError(
                f"{path}: the env journal holds {size // max(record_bytes, 1)} steps but the checkpoint was taken "
                f"after {steps}; it was cut short (disk full?). Resume from an earlier checkpoint with --checkpoint."
            )
        with open(path, "rb") as handle:
            data = handle.read(steps * record_bytes)
        with open(path, "r+b") as handle:  # drop what was written after the checkpoint
            handle.truncate(steps * record_bytes)
        journal.replay = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(steps, *shape).astype(dtype)
        journal.steps = journal._written = steps
        journal._write_header()
        return journal

    def take_replay(self) -> tuple[list[dict[str, Any]], np.ndarray] | None:
        """The resets and records to step again (once; None when nothing is to be replayed)."""
        if self.replay is None:
            return None
        replay, self.replay = self.replay, None
        return list(self.resets), replay


def _check_header(header: Any, path: Path) -> tuple[str | None, tuple[int, ...] | None, list[dict[str, Any]]]:
    problem = None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        problem = "not a version-1 journal header"
    else:
        dtype, shape, resets = header.get("dtype"), header.get("shape"), header.get("resets")
        if dtype is not None and dtype not in _DTYPES:
            problem = f"unsupported dtype {dtype!r}"
        elif shape is not None and (
            not isinstance(shape, list) or len(shape) > 8 or not all(isinstance(n, int) and 0 < n < 1 << 24 for n in shape)
        ):
            problem = "bad record shape"
        elif not isinstance(resets, list) or not all(
            isinstance(r, dict) and isinstance(r.get("at_step"), int) and (r.get("seed") is None or isinstance(r.get("seed"), int))
            for r in resets
        ):
            problem = "bad reset list"
        else:
            return dtype, tuple(shape) if shape is not None else None, resets
    raise RunError(f"{path}: {problem}; this run cannot be resumed exactly (resume from another run or retrain).")
