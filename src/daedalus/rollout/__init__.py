"""Collection: the one place where environments are stepped (see :mod:`daedalus.rollout.contract`)."""

from daedalus.rollout.contract import (
    DEFAULT_GROUP,
    ActOutput,
    EpisodeStats,
    Policy,
    RolloutSource,
    StepBatch,
    Trajectory,
)
from daedalus.rollout.source import LocalSource, SingleEnv, play_episodes
from daedalus.rollout.worker import RolloutWorker, SerialWorker, SubprocessWorker

__all__ = [
    "DEFAULT_GROUP",
    "ActOutput",
    "EpisodeStats",
    "LocalSource",
    "Policy",
    "RolloutSource",
    "RolloutWorker",
    "SerialWorker",
    "SingleEnv",
    "StepBatch",
    "SubprocessWorker",
    "Trajectory",
    "play_episodes",
]
