"""Every built-in config declares the range or choices of each value, and they reject nonsense.

The loader (``daedalus.config.build_config``) checks each value a profile sets with
:func:`daedalus.params.check_value`, so a field without a range would let an impossible value
through to training. These tests pin down which fields are deliberately unbounded.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import pytest

from daedalus.agents.loops import LoopConfig
from daedalus.algos.a2c import A2CConfig
from daedalus.algos.dqn import DQNConfig
from daedalus.algos.on_policy import OnPolicyConfig
from daedalus.algos.ppo import PPOConfig
from daedalus.algos.sac import SACConfig
from daedalus.algos.td3 import TD3Config
from daedalus.nn.flat import FLAT_ACTIVATIONS
from daedalus.nn.networks import ACTIVATIONS
from daedalus.params import check_value

CONFIGS: list[type] = [
    OnPolicyConfig,
    PPOConfig,
    A2CConfig,
    DQNConfig,
    SACConfig,
    TD3Config,
    LoopConfig,
]

#: Numbers that may be anything finite: an initial log-std, a return, an entropy target.
UNBOUNDED = {"log_std_init", "target_return", "target_entropy"}
#: Free text: a folder.
FREE_TEXT = {"logdir"}


def _fields(config_class: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(config_class)}


def _base_type(hint: Any) -> Any:
    """``int | None`` -> ``int``; ``list[int]`` -> ``list[int]``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        assert len(args) == 1, f"unexpected union {hint}"
        return args[0]
    return hint


def _kind(hint: Any) -> str:
    base = _base_type(hint)
    if base in (int, float) or (
        typing.get_origin(base) is list and typing.get_args(base) in ((int,), (float,))
    ):
        return "number"
    if base is str:
        return "text"
    return "other"


def _check(config_class: type, name: str, value: Any) -> str | None:
    return check_value(name, value, _fields(config_class)[name].metadata)


def _defaults(config_class: type) -> dict[str, Any]:
    instance = config_class()
    return {name: getattr(instance, name) for name in _fields(config_class)}


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
def test_every_number_has_a_range_and_every_string_has_choices(config_class: type) -> None:
    hints = typing.get_type_hints(config_class)
    missing = []
    for name, f in _fields(config_class).items():
        assert f.metadata.get("help"), f"{config_class.__name__}.{name} has no help text"
        kind = _kind(hints[name])
        if kind == "number" and "range" not in f.metadata and name not in UNBOUNDED:
            missing.append(f"{name} (number without a range)")
        if kind == "text" and "choices" not in f.metadata and not f.metadata.get("code") and name not in FREE_TEXT:
            missing.append(f"{name} (string without choices)")
        if kind == "other":
            assert _base_type(hints[name]) is bool, (
                f"{config_class.__name__}.{name}: unexpected type {hints[name]}"
            )
    assert not missing, f"{config_class.__name__}: {', '.join(missing)}"


def test_the_allow_lists_are_not_stale() -> None:
    """An allow-listed name is a field of some config and really has no range / choices."""
    seen: set[str] = set()
    for config_class in CONFIGS:
        for name, f in _fields(config_class).items():
            if name in UNBOUNDED:
                assert "range" not in f.metadata, f"{config_class.__name__}.{name} has a range now"
                seen.add(name)
            if name in FREE_TEXT:
                assert "choices" not in f.metadata, (
                    f"{config_class.__name__}.{name} has choices now"
                )
                seen.add(name)
    assert seen == UNBOUNDED | FREE_TEXT


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
def test_defaults_are_valid(config_class: type) -> None:
    for name, value in _defaults(config_class).items():
        assert _check(config_class, name, value) is None, (
            f"{config_class.__name__}.{name} = {value!r}"
        )


ACTIVATION_CHOICES: list[tuple[type, set[str]]] = [
    (OnPolicyConfig, set(ACTIVATIONS)),
    (PPOConfig, set(ACTIVATIONS)),
    (A2CConfig, set(ACTIVATIONS)),
    (SACConfig, set(ACTIVATIONS)),
    (TD3Config, set(ACTIVATIONS)),
    (DQNConfig, set(FLAT_ACTIVATIONS)),  # FlatMLP: relu and tanh only
]


@pytest.mark.parametrize(
    ("config_class", "choices"), ACTIVATION_CHOICES, ids=[c.__name__ for c, _ in ACTIVATION_CHOICES]
)
def test_activation_choices_are_what_the_networks_build(
    config_class: type, choices: set[str]
) -> None:
    fields = _fields(config_class)
    assert set(fields["activation"].metadata["choices"]) == choices


NAN, INF = math.nan, math.inf

#: (config, field, impossible value, fragment of the message after "'field' ").
IMPOSSIBLE: list[tuple[type, str, Any, str]] = [
    # the on-policy fields, checked on both algorithms that inherit them
    *[
        case
        for cls in (PPOConfig, A2CConfig)
        for case in [
            (cls, "learning_rate", 0, "must be > 0, got 0"),
            (cls, "learning_rate", -1, "must be > 0, got -1"),
            (cls, "learning_rate", NAN, "must be a finite number, got nan"),
            (cls, "learning_rate", INF, "must be a finite number, got inf"),
            (cls, "gamma", 1.5, "must be within [0, 1], got 1.5"),
            (cls, "gamma", -0.01, "must be within [0, 1], got -0.01"),
            (cls, "gae_lambda", 1.01, "must be within [0, 1], got 1.01"),
            (cls, "hidden_sizes", [64, 0], "every element of 'hidden_sizes' must be >= 1, got 0"),
            (cls, "hidden_sizes", [-64], "every element of 'hidden_sizes' must be >= 1, got -64"),
            (cls, "activation", "relux", "one of 'elu', 'gelu', 'relu', 'silu', 'tanh', got"),
            (cls, "total_steps", 0, "must be >= 1, got 0"),
            (cls, "num_steps", 0, "must be >= 1, got 0"),
            (cls, "vf_coef", -0.5, "must be >= 0, got -0.5"),
            (cls, "ent_coef", -0.01, "must be >= 0, got -0.01"),
            (cls, "max_grad_norm", 0.0, "must be > 0, got 0.0"),
            (cls, "obs_clip", 0.0, "must be > 0, got 0.0"),
            (cls, "eval_every_steps", -1, "must be >= 0, got -1"),
            (cls, "eval_episodes", 0, "must be >= 1, got 0"),
            (cls, "final_eval_episodes", -1, "must be >= 0"),
            (cls, "checkpoint_every_steps", -5, "must be >= 0"),
            (cls, "keep_last", -1, "must be >= 0, got -1"),
            (cls, "log_every_steps", 0, "must be >= 1, got 0"),
            (cls, "torch_threads", -1, "must be >= 0, got -1"),
            (cls, "log_std_init", NAN, "must be a finite number"),
            (cls, "target_return", INF, "must be a finite number"),
        ]
    ],
    (PPOConfig, "num_minibatches", 0, "must be >= 1, got 0"),
    (PPOConfig, "update_epochs", 0, "must be >= 1, got 0"),
    (PPOConfig, "clip_coef", 0.0, "must be > 0, got 0.0"),
    (PPOConfig, "clip_coef", -0.2, "must be > 0, got -0.2"),
    (PPOConfig, "adam_eps", 0.0, "must be > 0, got 0.0"),
    (PPOConfig, "target_kl", 0.0, "must be > 0, got 0.0"),
    (PPOConfig, "target_kl", NAN, "must be a finite number"),
    (A2CConfig, "rms_prop_alpha", 1.0, "must be within [0, 1), got 1.0"),
    (A2CConfig, "rms_prop_alpha", -0.1, "must be within [0, 1), got -0.1"),
    (A2CConfig, "rms_prop_eps", 0.0, "must be > 0, got 0.0"),
    # the fields the off-policy algorithms share
    *[
        case
        for cls in (DQNConfig, SACConfig, TD3Config)
        for case in [
            (cls, "learning_rate", 0, "must be > 0, got 0"),
            (cls, "learning_rate", -1e-3, "must be > 0, got -0.001"),
            (cls, "learning_rate", NAN, "must be a finite number, got nan"),
            (cls, "gamma", 1.5, "must be within [0, 1], got 1.5"),
            (cls, "tau", 0, "must be within (0, 1], got 0"),
            (cls, "tau", 1.01, "must be within (0, 1], got 1.01"),
            (cls, "buffer_size", 0, "must be >= 1, got 0"),
            (cls, "batch_size", 0, "must be >= 1, got 0"),
            (cls, "learning_starts", -1, "must be >= 0, got -1"),
            (cls, "n_steps", 0, "must be >= 1, got 0"),
            (cls, "train_frequency_steps", 0, "must be >= 1, got 0"),
            (cls, "gradient_steps", 0, "must be >= 1, got 0"),
            (cls, "hidden_sizes", [256, 0], "every element of 'hidden_sizes' must be >= 1, got 0"),
            (cls, "activation", "relux", "must be one of"),
            (cls, "eval_episodes", 0, "must be >= 1, got 0"),
            (cls, "torch_threads", -2, "must be >= 0, got -2"),
            (cls, "target_return", NAN, "must be a finite number"),
        ]
    ],
    (DQNConfig, "adam_eps", 0.0, "must be > 0, got 0.0"),
    (DQNConfig, "target_update_interval_steps", 0, "must be >= 1, got 0"),
    (DQNConfig, "exploration_initial_eps", 1.5, "must be within [0, 1], got 1.5"),
    (DQNConfig, "exploration_final_eps", -0.1, "must be within [0, 1], got -0.1"),
    (DQNConfig, "exploration_fraction", 0.0, "must be within (0, 1], got 0.0"),
    (DQNConfig, "exploration_fraction", 2.0, "must be within (0, 1], got 2.0"),
    (DQNConfig, "max_grad_norm", 0, "must be > 0, got 0"),
    (DQNConfig, "activation", "elu", "must be one of 'relu', 'tanh', got 'elu'"),
    (SACConfig, "initial_alpha", 0.0, "must be > 0, got 0.0"),
    (SACConfig, "target_update_interval", 0, "must be >= 1, got 0"),
    (SACConfig, "target_entropy", NAN, "must be a finite number"),
    (TD3Config, "policy_delay", 0, "must be >= 1, got 0"),
    (TD3Config, "exploration_noise", -0.1, "must be >= 0, got -0.1"),
    (TD3Config, "target_policy_noise", -0.2, "must be >= 0, got -0.2"),
    (TD3Config, "target_noise_clip", -0.5, "must be >= 0, got -0.5"),
    (LoopConfig, "max_episodes", 0, "must be >= 1, got 0"),
    (LoopConfig, "max_episode_len", 0, "must be >= 1, got 0"),
    (LoopConfig, "episodes_per_checkpoint", 0, "must be >= 1, got 0"),
    (LoopConfig, "time_per_checkpoint", 0.0, "must be > 0, got 0.0"),
    (LoopConfig, "time_per_checkpoint", INF, "must be a finite number"),
    (LoopConfig, "eval_episodes", -1, "must be >= 0, got -1"),
    (LoopConfig, "random_episodes", -1, "must be >= 0, got -1"),
]


@pytest.mark.parametrize(
    ("config_class", "name", "value", "fragment"),
    IMPOSSIBLE,
    ids=[f"{c.__name__}-{n}={v!r}" for c, n, v, _ in IMPOSSIBLE],
)
def test_impossible_values_are_rejected(
    config_class: type, name: str, value: Any, fragment: str
) -> None:
    problem = _check(config_class, name, value)
    assert problem is not None, f"{config_class.__name__}.{name} accepted {value!r}"
    assert f"'{name}' must be" in problem and fragment in problem, problem


#: (config, field, value at the edge of its range that the algorithm handles).
ALLOWED: list[tuple[type, str, Any]] = [
    (PPOConfig, "gamma", 0.0),
    (PPOConfig, "gamma", 1.0),
    (PPOConfig, "gae_lambda", 0.0),
    (PPOConfig, "ent_coef", 0.0),
    (PPOConfig, "vf_coef", 0.0),
    (PPOConfig, "eval_every_steps", 0),
    (PPOConfig, "final_eval_episodes", 0),
    (PPOConfig, "checkpoint_every_steps", 0),
    (PPOConfig, "keep_last", 0),
    (PPOConfig, "torch_threads", 0),
    (PPOConfig, "target_kl", None),
    (PPOConfig, "target_return", None),
    (PPOConfig, "target_return", -500.0),
    (PPOConfig, "log_std_init", -2.0),
    (PPOConfig, "clip_coef", 1.5),
    (PPOConfig, "hidden_sizes", []),
    (PPOConfig, "hidden_sizes", [1]),
    (PPOConfig, "learning_rate", 1e-12),
    (A2CConfig, "rms_prop_alpha", 0.0),
    (A2CConfig, "gae_lambda", 1.0),
    (DQNConfig, "tau", 1.0),
    (DQNConfig, "learning_starts", 0),
    (DQNConfig, "exploration_fraction", 1.0),
    (DQNConfig, "exploration_initial_eps", 0.0),
    (DQNConfig, "exploration_final_eps", 1.0),
    (SACConfig, "target_entropy", -6.0),
    (SACConfig, "target_entropy", None),
    (SACConfig, "batch_size", 10_000_000),  # more than buffer_size: sampling is with replacement
    (TD3Config, "exploration_noise", 0.0),
    (TD3Config, "target_policy_noise", 0.0),
    (TD3Config, "target_noise_clip", 0.0),
    (TD3Config, "gamma", 1.0),
    (LoopConfig, "max_episode_len", None),
    (LoopConfig, "episodes_per_checkpoint", None),
    (LoopConfig, "time_per_checkpoint", None),
    (LoopConfig, "time_per_checkpoint", 0.5),
    (LoopConfig, "eval_episodes", 0),
    (LoopConfig, "logdir", "anything/at/all"),
]


@pytest.mark.parametrize(
    ("config_class", "name", "value"),
    ALLOWED,
    ids=[f"{c.__name__}-{n}={v!r}" for c, n, v in ALLOWED],
)
def test_values_at_the_edges_are_accepted(config_class: type, name: str, value: Any) -> None:
    assert _check(config_class, name, value) is None
    config = config_class(**{name: value})  # no __post_init__ check rejects them either
    assert getattr(config, name) == value


def test_hidden_sizes_become_ints_and_defaults_are_not_shared() -> None:
    for config_class in (PPOConfig, A2CConfig, DQNConfig, SACConfig, TD3Config):
        first, second = config_class(), config_class()
        first.hidden_sizes.append(7)
        assert second.hidden_sizes != first.hidden_sizes, config_class.__name__
        floats: list[Any] = [8.0, 4]
        sizes = config_class(hidden_sizes=floats).hidden_sizes
        assert sizes == [8, 4] and all(type(size) is int for size in sizes)


def test_loop_config_checks_its_values_and_names_the_field_first() -> None:
    with pytest.raises(ValueError, match=r"must be >= 1, got 0"):
        LoopConfig(max_episodes=0)
    # built in Python: the first bad field (a profile's loop section reports all, see test_config)
    with pytest.raises(ValueError, match=r"^max_episodes: 'max_episodes' must be >= 1"):
        LoopConfig(max_episodes=0, eval_episodes=-1)
    with pytest.raises(ValueError) as info:
        LoopConfig(max_episodes=2, random_episodes=3)
    assert str(info.value).startswith("random_episodes: 3 is more than max_episodes (2)")
    with pytest.raises(ValueError) as info:
        LoopConfig(render=True, record=True)
    assert str(info.value).startswith("record: render and record cannot both be true")
    assert LoopConfig(max_episodes=2, random_episodes=2).random_episodes == 2
