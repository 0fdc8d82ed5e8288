"""Daedalus: train, evaluate, compare and ship reinforcement-learning agents.

Importing this package is cheap and has no side effects: the training machinery,
torch and Gymnasium are imported only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daedalus.agents.base import Agent, TensorAgent
from daedalus.config import ProfileConfig
from daedalus.errors import DaedalusError
from daedalus.hooks import CheckpointSaved, EvalEnd, RolloutEnd, StopTraining, UpdateEnd
from daedalus.registry import register_agent, register_env, register_wrapper
from daedalus.types import ExtraState, TrainContext

__version__ = "0.1.0"

_LAZY = {
    "train": "daedalus.api.session",
    "train_many": "daedalus.api.session",
    "batch": "daedalus.api.batch",
    "resume": "daedalus.api.resume",
    "load_run": "daedalus.api.runs",
    "describe_agent": "daedalus.api.runs",
    "RunResult": "daedalus.api.session",
    "LoadedRun": "daedalus.api.runs",
    "evaluate": "daedalus.evaluation",
    "report": "daedalus.tracking.progress",
    "StepAgent": "daedalus.agents.stepwise",
    "create_default": "daedalus.agents.stepwise",
    "evaluate_profile": "daedalus.api.runs",
    "test_agent": "daedalus.agents.stepwise",
    "BaseLoop": "daedalus.agents.loops",
    "DefaultLoop": "daedalus.agents.loops",
    "LoopConfig": "daedalus.agents.loops",
    "SampleManager": "daedalus.sample_manager",
}

__all__ = [
    "Agent",
    "BaseLoop",
    "CheckpointSaved",
    "EvalEnd",
    "RolloutEnd",
    "StopTraining",
    "UpdateEnd",
    "DaedalusError",
    "DefaultLoop",
    "ExtraState",
    "LoadedRun",
    "LoopConfig",
    "ProfileConfig",
    "RunResult",
    "SampleManager",
    "StepAgent",
    "TensorAgent",
    "TrainContext",
    "batch",
    "create_default",
    "describe_agent",
    "evaluate",
    "evaluate_profile",
    "load_run",
    "register_agent",
    "register_env",
    "register_wrapper",
    "report",
    "resume",
    "test_agent",
    "train",
    "train_many",
]

if TYPE_CHECKING:
    from daedalus.agents.loops import BaseLoop, DefaultLoop, LoopConfig
    from daedalus.agents.stepwise import StepAgent, create_default, test_agent
    from daedalus.api.batch import batch
    from daedalus.api.resume import resume
    from daedalus.api.runs import LoadedRun, describe_agent, evaluate_profile, load_run
    from daedalus.api.session import RunResult, train, train_many
    from daedalus.evaluation import evaluate
    from daedalus.sample_manager import SampleManager
    from daedalus.tracking.progress import report


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'daedalus' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
