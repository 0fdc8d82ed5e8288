"""Reading demonstrations written by other tools: imitation's npz, SB2/rl-zoo ``record_expert`` npz, Minari.

Every reader returns a :class:`RawDemos`: plain arrays in Daedalus's layout (episodes end to end,
one more observation than actions per episode) and the spaces as JSON when the file names them;
:meth:`daedalus.demos.Demonstrations.from_dataset` turns it into :class:`~daedalus.demos.Demonstrations`.
This module sits below :mod:`daedalus.demos` (it does not import it), so that both the algorithms
and the api can reach every format through ``Demonstrations.from_dataset``.

Formats (docs/demonstrations.md):

- **imitation** ``TrajectoryWithRew`` npz (``imitation.data.types.save`` before imitation 1.0, and
  rl_framework's replay files): ``obs`` (one more row per trajectory), ``acts``, ``rews``,
  ``terminal`` (one flag per trajectory), ``indices`` (where trajectories split ``acts``);
  ``infos`` (Python dicts: a pickle) is never read. Without ``rews`` (a ``Trajectory``), rewards are 0.
- **SB2 / rl-zoo ``record_expert``** npz: ``obs``, ``actions``, ``rewards``, ``episode_starts``
  (True at each episode's first step), ``episode_returns``. These files keep no final observation:
  the last observation of each episode is repeated, and episodes count as truncated.
- a **folder of npz files** (shards, one trajectory per file...): read in name order and concatenated.
- **Minari** datasets (HDF5, needs ``h5py``: ``pip install 'daedalus[minari]'``): a dataset folder
  (``data/main_data.hdf5``) or the HDF5 file itself; groups ``episode_<i>`` with ``observations``,
  ``actions``, ``rewards``, ``terminations`` and ``truncations``.

Nothing is ever unpickled: npz files are opened with ``allow_pickle=False``, and an array that
holds Python objects is refused with a message saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daedalus.errors import DaedalusError, MissingDependencyError

__all__ = ["RawDemos", "detect_format", "read_dataset", "read_minari", "read_npz"]


@dataclass
class RawDemos:
    """Episodes end to end as plain arrays (the layout of :class:`daedalus.demos.Demonstrations`)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode_lengths: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    #: The spaces as JSON (:func:`daedalus.demos.space_to_json`'s layout) when the file names them.
    observation_space: dict[str, Any] | None = None
    action_space: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- dispatch


def detect_format(path: str | Path) -> str:
    """``daedalus`` (a folder written by ``Demonstrations.save``), ``npz``, ``npz-folder`` or ``minari``."""
    source = Path(path)
    if source.is_dir():
        if (source / "demos.json").is_file():
            return "daedalus"
        if _minari_file(source) is not None:
            return "minari"
        if any(source.glob("*.npz")):
            return "npz-folder"
        if (source / "dataset_info.json").is_file() or any(source.glob("*.arrow")):
            raise DaedalusError(
                f"{source} is a HuggingFace `datasets` folder (imitation >= 1.0 saves trajectories this way); "
                "Daedalus reads npz, not Arrow. Convert it once with imitation installed (docs/demonstrations.md, "
                "'From imitation >= 1.0'), then pass the npz file."
            )
        raise DaedalusError(
            f"{source} holds no demonstrations Daedalus can read: expected demos.json (daedalus demos record), "
            "*.npz files (imitation, rl-zoo record_expert) or data/main_data.hdf5 (Minari)."
        )
    if not source.is_file():
        raise DaedalusError(f"demonstrations {source} do not exist. Record some with 'daedalus demos record RUN -o DIR'.")
    if source.suffix == ".npz":
        return "npz"
    if source.suffix in (".hdf5", ".h5"):
        return "minari"
    raise DaedalusError(
        f"{source}: unknown demonstrations file type '{source.suffix}'. Daedalus reads a demonstrations folder, "
        ".npz files (imitation, rl-zoo record_expert) and Minari .hdf5 files."
    )


def read_dataset(path: str | Path) -> RawDemos:
    """Read demonstrations in any format but Daedalus's own folder (see the module docstring)."""
    source = Path(path)
    kind = detect_format(source)
    if kind == "npz":
        return read_npz(source)
    if kind == "npz-folder":
        parts = [read_npz(file) for file in sorted(source.glob("*.npz"))]
        return _concatenate(parts, {"format": parts[0].info.get("format"), "source": str(source), "files": len(parts)})
    if kind == "minari":
        return read_minari(source)
    raise DaedalusError(f"{source} is a Daedalus demonstrations folder: read it with Demonstrations.load.")


# --------------------------------------------------------------------------- npz


def read_npz(path: str | Path) -> RawDemos:
    """One npz file: imitation's ``TrajectoryWithRew`` layout or SB2/rl-zoo's ``episode_starts`` layout."""
    file = Path(path)
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DaedalusError(f"{file} cannot be read as npz ({error}).") from None
    with archive:
        keys = set(archive.files)

        def array(name: str) -> np.ndarray:
            try:
                return np.asarray(archive[name])
            except ValueError as error:
                if "allow_pickle" in str(error):
                    raise DaedalusError(
                        f"{file}: array '{name}' holds Python objects, which only a pickle can restore; Daedalus "
                        "never unpickles data files (a pickle can run any code). Save it as plain numeric arrays."
                    ) from None
                raise DaedalusError(f"{file}: array '{name}' cannot be read ({error}).") from None

        if {"acts", "indices"} <= keys:
            return _imitation_npz(file, keys, array)
        if "episode_starts" in keys:
            return _episode_starts_npz(file, keys, array)
    raise DaedalusError(
        f"{file} is not a demonstrations npz Daedalus knows: it has {sorted(keys)}. Expected imitation's "
        "(obs, acts, rews, terminal, indices) or rl-zoo record_expert's (obs, actions, rewards, episode_starts)."
    )


def _imitation_npz(file: Path, keys: set[str], array: Any) -> RawDemos:
    missing = [k for k in ("obs", "terminal") if k not in keys]
    if missing:
        raise DaedalusError(f"{file}: an imitation trajectories file needs {', '.join(missing)} too.")
    obs, actions, terminal = array("obs"), array("acts"), array("terminal").astype(bool).reshape(-1)
    indices = array("indices").astype(np.int64).reshape(-1)
    # imitation's `indices` are the split points of `acts`: cumsum of the lengths of all but the last trajectory.
    bounds = np.concatenate([[0], indices, [len(actions)]])
    lengths = np.diff(bounds)
    if (lengths < 0).any() or len(terminal) != len(lengths):
        raise DaedalusError(
            f"{file}: 'indices' ({len(indices)} split points) and 'terminal' ({len(terminal)} flags) do not describe "
            f"{len(actions)} actions in {len(indices) + 1} trajectories."
        )
    rewards = array("rews").astype(np.float32).reshape(-1) if "rews" in keys else np.zeros(len(actions), np.float32)
    info = {"format": "imitation-npz", "source": str(file)}
    if "rews" not in keys:
        info["rewards"] = "missing (Trajectory without rewards): set to 0"
    return _checked(RawDemos(obs, actions, rewards, lengths, terminal, ~terminal, info=info), file)


def _episode_starts_npz(file: Path, keys: set[str], array: Any) -> RawDemos:
    obs_key = "obs" if "obs" in keys else "observations"
    missing = [k for k in (obs_key, "actions", "rewards") if k not in keys]
    if missing:
        raise DaedalusError(f"{file}: a record_expert file needs {', '.join(missing)} too.")
    step_obs, actions = array(obs_key), array("actions")
    rewards = array("rewards").astype(np.float32).reshape(-1)
    starts = array("episode_starts").astype(bool).reshape(-1)
    steps = len(actions)
    if len(step_obs) != steps or len(rewards) != steps or len(starts) != steps:
        raise DaedalusError(
            f"{file}: {obs_key}, actions, rewards and episode_starts need one row per step; got "
            f"{len(step_obs)}, {steps}, {len(rewards)} and {len(starts)}."
        )
    if steps == 0:
        raise DaedalusError(f"{file} holds no steps.")
    starts[0] = True
    first = np.flatnonzero(starts)
    lengths = np.diff(np.concatenate([first, [steps]]))
    # No final observation was saved: each episode's last observation is repeated in its place.
    last_rows = first + lengths - 1
    insert_at = np.cumsum(lengths)  # in step_obs coordinates: after each episode's last step
    obs = np.insert(step_obs, insert_at, step_obs[last_rows], axis=0)
    n = len(lengths)
    info = {
        "format": "record-expert-npz", "source": str(file),
        "final_obs": "not recorded: each episode's last observation is repeated; episodes count as truncated",
    }
    return _checked(RawDemos(obs, actions, rewards, lengths, np.zeros(n, bool), np.ones(n, bool), info=info), file)


# --------------------------------------------------------------------------- Minari


def _minari_file(folder: Path) -> Path | None:
    for candidate in (folder / "data" / "main_data.hdf5", folder / "main_data.hdf5"):
        if candidate.is_file():
            return candidate
    return None


def read_minari(path: str | Path) -> RawDemos:
    """A Minari dataset: its folder (``data/main_data.hdf5``) or the HDF5 file. Needs ``h5py``."""
    source = Path(path)
    file = _minari_file(source) if source.is_dir() else source
    if file is None:
        raise DaedalusError(f"{source} is not a Minari dataset folder (no data/main_data.hdf5).")
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError("h5py", "minari", "Reading Minari datasets") from None
    episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]] = []
    with h5py.File(file, "r") as data:
        names = sorted((k for k in data if k.startswith("episode_")), key=lambda k: int(k.split("_", 1)[1]))
        if not names:
            raise DaedalusError(f"{file} holds no episode_<i> groups: not a Minari dataset.")
        for name in names:
            group = data[name]
            if not isinstance(group.get("observations"), h5py.Dataset) or not isinstance(group.get("actions"), h5py.Dataset):
                raise DaedalusError(
                    f"{file}: {name} has dict or tuple observations or actions (HDF5 groups); Daedalus demonstrations "
                    "hold arrays. Flatten them into one array per step first."
                )
            terminations = np.asarray(group["terminations"][()], dtype=bool).reshape(-1)
            truncations = np.asarray(group["truncations"][()], dtype=bool).reshape(-1)
            episodes.append((
                np.asarray(group["observations"][()]), np.asarray(group["actions"][()]),
                np.asarray(group["rewards"][()], dtype=np.float32).reshape(-1),
                bool(terminations[-1]) if len(terminations) else False,
                bool(truncations[-1]) if len(truncations) else False,
            ))
        attrs = {key: data.attrs[key] for key in data.attrs}
    metadata = dict(attrs)
    meta_file = file.parent.parent / "metadata.json"  # Minari >= 0.5 keeps its metadata beside data/
    if meta_file.is_file():
        try:
            loaded = json.loads(meta_file.read_text())
            if isinstance(loaded, dict):
                metadata.update(loaded)
        except (OSError, ValueError):
            pass
    info: dict[str, Any] = {"format": "minari", "source": str(file)}
    for key in ("dataset_id", "env_spec", "algorithm_name"):
        if key in metadata:
            info[key] = _plain(metadata[key])
    raw = RawDemos(
        obs=np.concatenate([e[0] for e in episodes]), actions=np.concatenate([e[1] for e in episodes]),
        rewards=np.concatenate([e[2] for e in episodes]), episode_lengths=np.asarray([len(e[1]) for e in episodes], np.int64),
        terminated=np.asarray([e[3] for e in episodes]), truncated=np.asarray([e[4] for e in episodes]),
        observation_space=_space_json(metadata.get("observation_space")), action_space=_space_json(metadata.get("action_space")),
        info=info,
    )
    return _checked(raw, file)


def _space_json(value: Any) -> dict[str, Any] | None:
    """Minari stores spaces as JSON text in Gymnasium's serialization; Box and Discrete match Daedalus's."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, (str, int, float, bool, list, dict)) or value is None else str(value)


# --------------------------------------------------------------------------- checks


def _checked(raw: RawDemos, file: Path) -> RawDemos:
    """Refuse what is not plain numbers, and episode counts that do not add up."""
    for name in ("obs", "actions"):
        array = getattr(raw, name)
        if array.dtype.kind not in "biuf":
            raise DaedalusError(f"{file}: '{name}' has dtype {array.dtype}; demonstrations hold numeric arrays.")
    steps, n = int(raw.episode_lengths.sum()), len(raw.episode_lengths)
    if len(raw.actions) != steps or len(raw.rewards) != steps or len(raw.obs) != steps + n:
        raise DaedalusError(
            f"{file}: {n} episodes of {steps} steps need {steps} actions and rewards and {steps + n} observations "
            f"(one more per episode); got {len(raw.actions)}, {len(raw.rewards)} and {len(raw.obs)}."
        )
    return raw


def _concatenate(parts: list[RawDemos], info: Mapping[str, Any]) -> RawDemos:
    return RawDemos(
        obs=np.concatenate([p.obs for p in parts]), actions=np.concatenate([p.actions for p in parts]),
        rewards=np.concatenate([p.rewards for p in parts]),
        episode_lengths=np.concatenate([p.episode_lengths for p in parts]),
        terminated=np.concatenate([p.terminated for p in parts]), truncated=np.concatenate([p.truncated for p in parts]),
        observation_space=parts[0].observation_space, action_space=parts[0].action_space, info=dict(info),
    )
