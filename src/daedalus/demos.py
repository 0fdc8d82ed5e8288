"""Demonstrations: recorded episodes in one open format, for imitation learning (BC, DAgger, GAIL, AIRL).

A :class:`Demonstrations` holds whole episodes laid end to end (rl_framework's
``EpisodeSequence``, imitation's list of ``TrajectoryWithRew``): episode ``i`` has ``T_i``
steps, ``T_i + 1`` observations (the last one is the observation after the last action: the real
final observation), ``T_i`` actions and rewards, and whether it ended by termination or by
truncation. On disk a demonstrations folder holds two files (docs/demonstrations.md):

- ``demos.safetensors``: the arrays ``obs`` (``sum(T_i + 1), *obs_shape``), ``actions``
  (``sum(T_i), *action_shape``), ``rewards`` (float32), ``episode_lengths`` (int64, ``T_i``),
  ``terminated`` and ``truncated`` (uint8, one per episode);
- ``demos.json``: ``format`` (``daedalus-demos``), ``version``, the counts, the spaces as JSON
  (:func:`space_to_json`) and free ``info`` (where they came from: env id, run, agent, seed).

Nothing is ever unpickled: safetensors and JSON only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daedalus.errors import DaedalusError

__all__ = [
    "DEMOS_FILE",
    "FORMAT",
    "META_FILE",
    "Demonstrations",
    "Episode",
    "Transitions",
    "space_from_json",
    "space_to_json",
]

FORMAT = "daedalus-demos"
VERSION = 1
DEMOS_FILE = "demos.safetensors"
META_FILE = "demos.json"


@dataclass
class Episode:
    """One episode: ``obs`` has one more row than ``actions`` and ``rewards``."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool = False
    truncated: bool = False

    def __post_init__(self) -> None:
        steps = len(self.actions)
        if len(self.obs) != steps + 1 or len(self.rewards) != steps:
            raise ValueError(
                f"an episode of {steps} actions needs {steps + 1} observations and {steps} rewards, "
                f"got {len(self.obs)} and {len(self.rewards)}"
            )

    @property
    def num_steps(self) -> int:
        """Actions taken."""
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of rewards."""
        return float(np.sum(self.rewards, dtype=np.float64))


@dataclass
class Transitions:
    """Every step of a set of episodes as flat arrays (what BC and discriminators train on)."""

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    rewards: np.ndarray
    #: True where the episode terminated at this step (not at a truncation).
    terminated: np.ndarray
    #: True at the last step of each episode (terminated or truncated).
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


@dataclass
class Demonstrations:
    """Episodes laid end to end (see the module docstring)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode_lengths: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    observation_space: Any = None
    action_space: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.episode_lengths = np.asarray(self.episode_lengths, dtype=np.int64)
        self.terminated = np.asarray(self.terminated, dtype=bool)
        self.truncated = np.asarray(self.truncated, dtype=bool)
        self.rewards = np.asarray(self.rewards, dtype=np.float32)
        steps = int(self.episode_lengths.sum())
        n = len(self.episode_lengths)
        if (self.episode_lengths < 0).any():
            raise DaedalusError("demonstrations: an episode length is negative")
        if len(self.actions) != steps or len(self.rewards) != steps or len(self.obs) != steps + n:
            raise DaedalusError(
                f"demonstrations: {n} episodes of {steps} steps in all need {steps} actions and rewards and "
                f"{steps + n} observations (one more per episode); got {len(self.actions)} actions, "
                f"{len(self.rewards)} rewards and {len(self.obs)} observations"
            )
        if len(self.terminated) != n or len(self.truncated) != n:
            raise DaedalusError(f"demonstrations: terminated and truncated need one flag per episode ({n})")

    # ------------------------------------------------------------------ building

    @classmethod
    def from_episodes(
        cls, episodes: Sequence[Episode], observation_space: Any = None, action_space: Any = None, info: Mapping[str, Any] | None = None
    ) -> Demonstrations:
        """Lay ``episodes`` end to end."""
        if not episodes:
            raise DaedalusError("demonstrations need at least one episode")
        return cls(
            obs=np.concatenate([np.asarray(e.obs) for e in episodes]),
            actions=np.concatenate([np.asarray(e.actions) for e in episodes]),
            rewards=np.concatenate([np.asarray(e.rewards, dtype=np.float32) for e in episodes]),
            episode_lengths=np.asarray([e.num_steps for e in episodes], dtype=np.int64),
            terminated=np.asarray([e.terminated for e in episodes], dtype=bool),
            truncated=np.asarray([e.truncated for e in episodes], dtype=bool),
            observation_space=observation_space, action_space=action_space, info=dict(info or {}),
        )

    @classmethod
    def from_dataset(cls, path: str | Path) -> Demonstrations:
        """Demonstrations in any format Daedalus reads (rl_framework's ``EpisodeSequence.from_dataset``).

        ``path`` is a folder written by :meth:`save`, an imitation or rl-zoo ``record_expert`` npz
        file, a folder of such npz files, or a Minari dataset (folder or HDF5 file; needs ``h5py``).
        Nothing is unpickled: see :mod:`daedalus.demos_formats` and docs/demonstrations.md.
        """
        from daedalus.demos_formats import detect_format, read_dataset

        if detect_format(path) == "daedalus":
            return cls.load(path)
        raw = read_dataset(path)
        return cls(
            obs=raw.obs, actions=raw.actions, rewards=raw.rewards, episode_lengths=raw.episode_lengths,
            terminated=raw.terminated, truncated=raw.truncated,
            observation_space=space_from_json(raw.observation_space), action_space=space_from_json(raw.action_space),
            info=raw.info,
        )

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        """Episodes."""
        return len(self.episode_lengths)

    @property
    def num_steps(self) -> int:
        """Actions in all episodes."""
        return int(self.episode_lengths.sum())

    @property
    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode (float64)."""
        ends = np.cumsum(self.episode_lengths)
        sums = np.add.reduceat(self.rewards.astype(np.float64), np.concatenate([[0], ends[:-1]])) if self.num_steps else np.zeros(len(self))
        return np.where(self.episode_lengths > 0, sums, 0.0)

    @property
    def mean_return(self) -> float:
        """Mean undiscounted episode return."""
        return float(self.episode_returns.mean())

    def episodes(self) -> Iterator[Episode]:
        """Each episode, in order (views into the arrays)."""
        step = row = 0
        for index, length in enumerate(self.episode_lengths.tolist()):
            yield Episode(
                self.obs[row : row + length + 1], self.actions[step : step + length], self.rewards[step : step + length],
                bool(self.terminated[index]), bool(self.truncated[index]),
            )
            step += length
            row += length + 1

    def transitions(self) -> Transitions:
        """Every step as ``(obs, action, next_obs, reward, terminated, last)`` rows."""
        n = len(self)
        # Row of each step's observation: step j of episode i is at j + i (one extra obs per earlier episode).
        episode_of_step = np.repeat(np.arange(n), self.episode_lengths)
        rows = np.arange(self.num_steps) + episode_of_step
        last = np.zeros(self.num_steps, dtype=bool)
        ends = np.cumsum(self.episode_lengths) - 1
        nonempty = self.episode_lengths > 0
        last[ends[nonempty]] = True
        terminated = np.zeros(self.num_steps, dtype=bool)
        terminated[ends[nonempty & self.terminated]] = True
        return Transitions(self.obs[rows], self.actions, self.obs[rows + 1], self.rewards, terminated, last)

    def take(self, episodes: int) -> Demonstrations:
        """The first ``episodes`` episodes."""
        kept = list(self.episodes())[:episodes]
        return Demonstrations.from_episodes(kept, self.observation_space, self.action_space, self.info)

    # ------------------------------------------------------------------ files

    def save(self, folder: str | Path) -> Path:
        """Write ``demos.safetensors`` and ``demos.json`` into ``folder`` (created); returns the folder."""
        from safetensors.numpy import save_file

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {
            "obs": np.ascontiguousarray(self.obs),
            "actions": np.ascontiguousarray(self.actions),
            "rewards": np.ascontiguousarray(self.rewards, dtype=np.float32),
            "episode_lengths": np.ascontiguousarray(self.episode_lengths, dtype=np.int64),
            "terminated": self.terminated.astype(np.uint8),
            "truncated": self.truncated.astype(np.uint8),
        }
        save_file(arrays, str(path / DEMOS_FILE))
        meta = {
            "format": FORMAT, "version": VERSION, "episodes": len(self), "steps": self.num_steps,
            "mean_return": self.mean_return,
            "observation_space": space_to_json(self.observation_space), "action_space": space_to_json(self.action_space),
            "info": self.info,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Demonstrations:
        """Read a folder written by :meth:`save` (safetensors and JSON only; never a pickle)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(folder)
        meta_file, data_file = path / META_FILE, path / DEMOS_FILE
        if not data_file.is_file() or not meta_file.is_file():
            raise DaedalusError(
                f"{path} is not a demonstrations folder: it needs {DEMOS_FILE} and {META_FILE}. Record one with "
                "'daedalus demos record RUN -o DIR' (docs/demonstrations.md)."
            )
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DaedalusError(f"{meta_file} is not valid JSON ({error}); record the demonstrations again.") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DaedalusError(f"{meta_file} is not a {FORMAT} file (format: {meta.get('format') if isinstance(meta, dict) else meta!r}).")
        if int(meta.get("version", 0)) > VERSION:
            raise DaedalusError(f"{meta_file} has format version {meta.get('version')}; this Daedalus reads up to {VERSION}. Upgrade Daedalus.")
        try:
            arrays = load_file(str(data_file))
        except (SafetensorError, OSError, ValueError) as error:
            raise DaedalusError(f"{data_file} cannot be read as safetensors ({error}); record the demonstrations again.") from None
        missing = [k for k in ("obs", "actions", "rewards", "episode_lengths", "terminated", "truncated") if k not in arrays]
        if missing:
            raise DaedalusError(f"{data_file} lacks the arrays {', '.join(missing)}; record the demonstrations again.")
        return cls(
            obs=arrays["obs"], actions=arrays["actions"], rewards=arrays["rewards"], episode_lengths=arrays["episode_lengths"],
            terminated=arrays["terminated"].astype(bool), truncated=arrays["truncated"].astype(bool),
            observation_space=space_from_json(meta.get("observation_space")), action_space=space_from_json(meta.get("action_space")),
            info=dict(meta.get("info") or {}),
        )


# --------------------------------------------------------------------------- spaces as JSON


def space_to_json(space: Any) -> dict[str, Any] | None:
    """Box, Discrete, MultiDiscrete and MultiBinary spaces as plain JSON (``None``: unknown or no space)."""
    if space is None:
        return None
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
            "low": space.low.tolist(), "high": space.high.tolist(),
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    return {"type": type(space).__name__}


def space_from_json(data: Any) -> Any:
    """Inverse of :func:`space_to_json` (``None`` for what it cannot rebuild)."""
    if not isinstance(data, dict):
        return None
    from gymnasium import spaces

    kind = data.get("type")
    try:
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
        if kind == "Box":
            dtype = np.dtype(str(data.get("dtype", "float32")))
            if dtype.kind not in "fiub":
                return None
            low = np.asarray(data["low"], dtype=dtype).reshape(data["shape"])
            high = np.asarray(data["high"], dtype=dtype).reshape(data["shape"])
            return spaces.Box(low=low, high=high, dtype=dtype)
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
        if kind == "MultiBinary":
            return spaces.MultiBinary(data["n"])
    except (KeyError, TypeError, ValueError):
        return None
    return None
