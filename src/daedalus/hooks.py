"""Typed training hooks: what a callback is told, and how it stops training.

A callback is any object with some of these methods, each receiving one frozen dataclass
(never ``locals()``)::

    class StopAt:
        def __init__(self, mean_return: float = 475.0) -> None:
            self.mean_return = mean_return

        def on_eval(self, info: daedalus.EvalEnd) -> str | None:  # daedalus.hooks.EvalEnd
            if info.mean_return >= self.mean_return:
                return f"mean return {info.mean_return:.1f} reached {self.mean_return}"
            return None

A profile lists callbacks as ``callbacks: [pkg.mod:StopAt, {ref: file.py:StopAt, args:
{mean_return: 200}}]`` (a class is instantiated with ``args``), and ``daedalus.train(...,
callbacks=[StopAt()])`` takes objects. A hook **stops training** by returning a reason (a
non-empty string, or ``True``) or by raising :class:`StopTraining`; the run then ends
``completed`` with ``stop_reason`` in ``run.json``. The built-in algorithms (PPO, A2C, DQN, SAC,
TD3) emit every hook through the one training schedule (``daedalus.algos.common.TrainingSchedule``);
the stepwise loop emits ``on_rollout_end`` (once per episode), ``on_eval`` and ``on_checkpoint``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HOOK_NAMES",
    "CheckpointSaved",
    "EvalEnd",
    "Hooks",
    "RolloutEnd",
    "StopTraining",
    "UpdateEnd",
]


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a hook to end training early; the run ends ``completed`` with this reason."""


@dataclass(frozen=True)
class RolloutEnd:
    """A collection finished (a rollout of ``num_transitions``, or one replay-loop step)."""

    step: int
    episodes: int
    num_transitions: int
    #: Returns of the episodes that finished in this collection.
    episode_returns: tuple[float, ...] = ()
    policy_version: int = 0


@dataclass(frozen=True)
class UpdateEnd:
    """A learning update finished."""

    step: int
    num_updates: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalEnd:
    """A periodic evaluation finished."""

    step: int
    mean_return: float
    std_return: float
    returns: tuple[float, ...]
    train_seconds: float


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint was written."""

    step: int
    name: str


#: Hook method name -> the payload it receives.
HOOK_NAMES: dict[str, type] = {
    "on_rollout_end": RolloutEnd,
    "on_update": UpdateEnd,
    "on_eval": EvalEnd,
    "on_checkpoint": CheckpointSaved,
}


class Hooks:
    """The callbacks of one training call; :meth:`emit` calls them and remembers a stop request."""

    def __init__(self, callbacks: Sequence[Any] = ()) -> None:
        self.callbacks = list(callbacks)
        self.stop_reason: str | None = None
        #: Set by the run when Ctrl-C / SIGTERM asks training to stop at the next clean point
        #: (after the current update); the run then ends ``interrupted`` and resumes exactly.
        self.interrupt: str | None = None
        #: True while a training loop checks :attr:`interrupt` (the built-in training schedule
        #: does); otherwise a signal stops training at once.
        self.graceful = False

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def emit(self, name: str, payload: Any) -> bool:
        """Call ``name`` on every callback that has it; True once some hook asked to stop."""
        for callback in self.callbacks:
            method = getattr(callback, name, None)
            if method is None:
                continue
            try:
                answer = method(payload)
            except StopTraining as stop:
                answer = str(stop) or True
            if answer and self.stop_reason is None:
                self.stop_reason = answer if isinstance(answer, str) else f"{type(callback).__name__}.{name} asked to stop"
        return self.stop_reason is not None
