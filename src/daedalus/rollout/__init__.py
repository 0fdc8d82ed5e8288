"""Rollout workers: the one place where environments are stepped."""

from daedalus.rollout.worker import RolloutWorker, SerialWorker, StepBatch, SubprocessWorker

__all__ = ["RolloutWorker", "SerialWorker", "StepBatch", "SubprocessWorker"]
