"""Daedalus: train, evaluate, compare and ship reinforcement-learning agents.

Importing this package is cheap and has no side effects: the training machinery,
torch and Gymnasium are imported only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daedalus.agents.base import Agent, TensorAgent
from daedalus.config import ProfileConfig
from daedalus.errors import DaedalusError
from daedalus.registry import register_agent, register_env, register_wrapper
from daedalus.types import ExtraState, TrainContext

__version__ = "0.1.0"

_LAZY = {
    "train": "daedalus.api",
    "train_many": "daedalus.api",
    "batch": "daedalus.api",
    "load_run": "daedalus.api",
    "describe_agent": "daedalus.api",
    "RunResult": "daedalus.api",
    "LoadedRun": "daedalus.api",
    "evaluate": "daedalus.evaluation",
    "report": "daedalus.tracking.progress",
    "StepAgent": "daedalus.agents.stepwise",
    "create_default": "daedalus.agents.stepwise",
    "evaluate_profile": "daedalus.api",
    "test_agent": "daedalus.agents.stepwise",
    "BaseLoop": "daedalus.agents.loops",
    "DefaultLoop": "daedalus.agents.loops",
    "LoopConfig": "daedalus.agents.loops",
}

__all__ = [
    "Agent",
    "BaseLoop",
    "DaedalusError",
    "DefaultLoop",
    "ExtraState",
    "LoadedRun",
    "LoopConfig",
    "ProfileConfig",
    "RunResult",
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
    "test_agent",
    "train",
    "train_many",
]

if TYPE_CHECKING:
    from daedalus.agents.loops import BaseLoop, DefaultLoop, LoopConfig
    from daedalus.agents.stepwise import StepAgent, create_default, test_agent
    from daedalus.api import (
        LoadedRun,
        RunResult,
        batch,
        describe_agent,
        evaluate_profile,
        load_run,
        train,
        train_many,
    )
    from daedalus.evaluation import evaluate
    from daedalus.tracking.progress import report


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'daedalus' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
