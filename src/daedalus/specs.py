"""Registry records: what ``register_agent`` / ``register_env`` / ``register_wrapper`` store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent.

    ``agent_factory`` is called with keyword arguments picked by its parameter names from:
    ``observation_space``, ``action_space``, ``config``, ``device``, ``obs`` / ``obs_shape``
    (the observation shape), ``obs_dim`` (its flattened size), ``n_actions`` (for discrete
    action spaces), ``env_id`` and ``seed``.

    ``training_wrapper(env_factory, agent, config, artifacts, save_callback[, context])``
    trains the agent; it receives a :class:`daedalus.types.TrainContext` as ``context``
    when it declares that parameter.

    ``config_class``, when given, is a dataclass: the profile's ``config`` is validated
    against its fields and the factory and wrapper receive an instance of it.

    ``default_config``, when given (and there is no ``config_class``), declares every
    parameter the agent takes with its default: unknown keys in the profile are errors
    and missing ones are filled in.

    ``action_spaces``, when given, names the Gymnasium action-space classes the agent can
    act in (``("Discrete",)``); another space is a profile error before training.

    ``flat_observations``: the agent's networks take one flat vector. Dict and Tuple
    observation spaces are then flattened for it (Gymnasium's ``FlattenObservation``),
    and spaces that have no flat form (Graph, Sequence, Text) are refused before training.

    ``check_profile(profile)``, when given, is called during validation (before anything
    trains) and raises a ProfileError for anything the agent cannot run with (its
    ``loop:`` section, for instance).
    """

    agent_id: str
    agent_factory: Callable[..., Any]
    training_wrapper: Callable[..., Any] | None = None
    description: str = ""
    config_class: type | None = None
    default_config: dict[str, Any] | None = None
    check_profile: Callable[[Any], None] | None = None
    action_spaces: tuple[str, ...] | None = None
    flat_observations: bool = False


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment: ``factory(**env_args)`` returns a Gymnasium-API env."""

    env_id: str
    factory: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class WrapperSpec:
    """A registered wrapper: ``wrapper(env, **args)`` returns the wrapped env."""

    wrapper_id: str
    wrapper: Callable[..., Any]
    description: str = ""
