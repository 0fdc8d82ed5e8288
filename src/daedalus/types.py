"""Small shared types: the contracts between the run machinery and training code.

This module sits at the bottom of the import graph (the import-linter layers in
pyproject.toml): it imports only :mod:`daedalus.hooks` (the hook payloads, lower still), not
even other modules for type checking, so it names the agent and the config by what they are,
not by their classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from daedalus.hooks import Hooks

if TYPE_CHECKING:
    import gymnasium as gym

#: Whatever an agent carries between calls of ``get_action`` (recurrent state, counters, ...).
ExtraState: TypeAlias = Any

#: ``env_factory(seed)`` builds one fresh environment with the profile's wrappers applied.
EnvFactory: TypeAlias = "Callable[[int | None], gym.Env]"

#: ``save_callback(agent, artifacts, step, name)``: snapshot the agent under ``checkpoints/<name>``.
#: The agent is whatever the agent factory returned (usually a :class:`daedalus.agents.base.Agent`).
SaveCallback: TypeAlias = "Callable[[Any, dict[str, Any], int, str], None]"


class MetricSink(Protocol):
    """Receives scalar metrics keyed by step (CSV, TensorBoard, MLflow, ...)."""

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` at environment step ``step``."""

    def close(self) -> None:
        """Flush and release resources."""


class ProgressSink(Protocol):
    """The live progress display that training code updates."""

    def update(
        self,
        steps: int | None = None,
        episodes: int | None = None,
        last_return: float | None = None,
        **extra: float,
    ) -> None:
        """Report the latest counters; any keyword becomes an extra column."""


@dataclass
class TrainContext:
    """Everything the run machinery hands to a training wrapper besides Crete's five arguments.

    A training wrapper receives it when its signature has a parameter named ``context``.
    Built-in algorithms use it to build vector envs, log metrics and write checkpoints;
    they never import the run store or the CLI.
    """

    profile_id: str
    agent_id: str
    env_id: str
    env_args: dict[str, Any]
    num_envs: int
    seed: int | None
    vectorization: str
    device: str
    #: The profile's ``config`` section, read-only (a :class:`daedalus.config.ProfileConfig`).
    config: Mapping[str, Any]
    make_env: Callable[[int | None], gym.Env]
    logger: MetricSink
    progress: ProgressSink
    #: ``checkpoint(agent, name, step)``: snapshot the agent under ``checkpoints/<name>``.
    checkpoint: Callable[[Any, str, int], None]
    run_dir: Path | None = None
    #: The profile's ``loop:`` section (stepwise agents), as written.
    loop: dict[str, Any] | None = None
    #: Arbitrary values the run machinery or user code wants to pass along.
    extras: dict[str, Any] = field(default_factory=dict)
    #: Where the envs run: ``local`` (this process), ``subprocess`` (one child process) or ``ray``
    #: (remote workers); the profile's ``rollout.backend``. ``vectorization`` says how copies run
    #: inside one process.
    backend: str = "local"
    #: The folder of the profile file (relative paths in a config, e.g. ``demos:``, are relative to it).
    profile_dir: Path | None = None
    #: ``backend: ray``: the rollout section's Ray settings (a :class:`daedalus.rollout.ray_source.RayOptions`).
    ray: Any = None
    #: A picklable zero-argument recipe returning ``make_env`` (what remote workers build their
    #: envs with: ``make_env`` itself may close over objects that cannot travel); None outside a run.
    env_recipe: Callable[[], Callable[[int | None], Any]] | None = None
    #: The callbacks of this training call (the profile's ``callbacks`` and those passed to
    #: ``daedalus.train``); the training schedule emits the typed hooks to them.
    hooks: Hooks = field(default_factory=Hooks)
    #: ``resolve(ref)`` imports a ``pkg.mod:Obj`` / ``file.py:Obj`` a config names (a custom
    #: loss), relative to the profile and under the run's trust rules; None outside a run.
    resolve: Callable[[str], Any] | None = None
    #: ``load_run(run, checkpoint=None, runs_dir=None)``: a saved run as ``daedalus.load_run`` returns
    #: it, under the trust rules of ``daedalus evaluate`` (DAgger's expert); None outside a run.
    load_run: Callable[..., Any] | None = None
    #: The run's env journal (:class:`daedalus.rollout.journal.EnvJournal`): every action sent to
    #: the training envs, so that a resume finds them as they were; None outside a run.
    journal: Any = None
