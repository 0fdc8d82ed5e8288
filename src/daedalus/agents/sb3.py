"""Stable-Baselines3 algorithms as Daedalus agents: ``agent_id: sb3:PPO``, ``sb3_contrib:TQC``.

Read top to bottom: the spec (:func:`sb3_agent_spec`: package and class from fixed lists), the
typed config (the algorithm's constructor signature plus Daedalus's schedule keys, built once
per class), plain YAML to constructor arguments (activation functions and optimizers from
fixed tables, ``lin_<x>`` schedules, action noise; nothing is eval-ed or imported by a name
from the profile), the agent (:class:`SB3Agent`: the SB3 model, saved as the policy's
``state_dict`` in safetensors plus JSON, never pickled), and the training wrapper
(:func:`train_sb3`: ``model.learn()`` with a callback that forwards metrics, progress,
evaluations, checkpoints and hooks through the one :class:`~daedalus.algos.common.TrainingSchedule`).

Saved: the policy's weights and SB3's torch variables (SAC's ``log_ent_coef``), the counters,
the spaces and the constructor arguments. Not saved: the optimizers' state and the replay or
rollout buffer, so a resumed SB3 run continues from the weights but is not bit-identical to
an uninterrupted one (docs/sb3.md).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import re
import sys
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from daedalus.agents.base import TensorAgent
from daedalus.errors import MissingDependencyError, ProfileError, RegistryError, closest
from daedalus.params import AT_LEAST_ONE, NONNEGATIVE, check_fields, param
from daedalus.specs import AgentSpec
from daedalus.types import TrainContext

__all__ = [
    "ACTIVATIONS",
    "OPTIMIZERS",
    "SB3Agent",
    "SB3RunConfig",
    "algorithm_class",
    "sb3_agent_spec",
    "sb3_kwargs",
    "space_from_json",
    "space_to_json",
    "train_sb3",
]

#: ``sb3`` / ``sb3_contrib`` -> (package, pip name); mirrors ``daedalus.registry.SB3_PREFIXES``.
PACKAGES: dict[str, tuple[str, str]] = {
    "sb3": ("stable_baselines3", "stable-baselines3"),
    "sb3_contrib": ("sb3_contrib", "sb3-contrib"),
}

#: ``policy_kwargs.activation_fn`` names -> ``torch.nn`` classes. A fixed table: nothing is
#: imported by a name a profile wrote.
ACTIVATIONS: dict[str, str] = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "selu": "SELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "mish": "Mish",
    "sigmoid": "Sigmoid",
    "softplus": "Softplus",
    "celu": "CELU",
    "hardswish": "Hardswish",
    "identity": "Identity",
}

#: ``policy_kwargs.optimizer_class`` names -> ``torch.optim`` classes (a fixed table too).
OPTIMIZERS: dict[str, str] = {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "sgd": "SGD"}

#: Action spaces each known algorithm acts in (checked when the profile is validated).
ACTION_SPACES: dict[str, tuple[str, ...]] = {
    "PPO": ("Box", "Discrete", "MultiDiscrete", "MultiBinary"),
    "A2C": ("Box", "Discrete", "MultiDiscrete", "MultiBinary"),
    "TRPO": ("Box", "Discrete", "MultiDiscrete", "MultiBinary"),
    "RecurrentPPO": ("Box", "Discrete", "MultiDiscrete", "MultiBinary"),
    "MaskablePPO": ("Discrete", "MultiDiscrete", "MultiBinary"),
    "ARS": ("Box", "Discrete"),
    "DQN": ("Discrete",),
    "QRDQN": ("Discrete",),
    "SAC": ("Box",),
    "TD3": ("Box",),
    "DDPG": ("Box",),
    "TQC": ("Box",),
    "CrossQ": ("Box",),
}

#: Constructor arguments Daedalus sets itself (the profile's env, seed and device; its own logs).
_SET_BY_DAEDALUS = ("self", "policy", "env", "seed", "device", "tensorboard_log", "_init_setup_model")
#: Constructor arguments a profile sets elsewhere: declared (so that the error says where), always null.
_FROM_PROFILE = {
    "seed": "'seed' is set by Daedalus from the profile's own 'seed' (top level, beside env_id); remove it from config",
    "device": "'device' is set by Daedalus from the profile's own 'device' (top level); remove it from config",
    "tensorboard_log": "'tensorboard_log': Daedalus writes TensorBoard events to the run folder's tb/; remove it from config",
}
#: Constructor arguments that take classes: refused in a profile (they would name code).
_CLASS_ARGUMENTS = ("rollout_buffer_class", "replay_buffer_class")
#: ``lin_<value>``: the value decayed linearly to 0 over training (rl-zoo3's notation).
_LINEAR = re.compile(r"lin_([-+0-9.eE]+)")
FORMAT = "daedalus-sb3/1"


# --------------------------------------------------------------------------- spec


def algorithm_class(agent_id: str) -> type:
    """The SB3 algorithm class an id names (``sb3:PPO``), from its package's exported algorithms.

    A missing package is a :class:`~daedalus.errors.MissingDependencyError`; an unknown name
    a :class:`~daedalus.errors.RegistryError` listing the available ones.
    """
    prefix, _, name = agent_id.partition(":")
    if prefix not in PACKAGES:
        raise RegistryError(f"'{agent_id}' is not an SB3 id: write 'sb3:NAME' or 'sb3_contrib:NAME'.")
    package_name, pip_name = PACKAGES[prefix]
    try:
        package = importlib.import_module(package_name)
    except ImportError:
        raise MissingDependencyError(pip_name, "sb3", f"agent '{agent_id}'") from None
    from stable_baselines3.common.base_class import BaseAlgorithm

    available = sorted(
        n for n in dir(package)
        if not n.startswith("_") and inspect.isclass(getattr(package, n)) and issubclass(getattr(package, n), BaseAlgorithm)
    )
    if name not in available:
        hint = closest(name, available, n=1)
        raise RegistryError(
            f"unknown {package_name} algorithm '{name}' in '{agent_id}'."
            + (f" Did you mean '{prefix}:{hint[0]}'?" if hint else "")
            + f" Available: {', '.join(f'{prefix}:{n}' for n in available)}"
        )
    algo: type = getattr(package, name)
    return algo


def sb3_agent_ids(prefix: str) -> dict[str, str]:
    """``{"sb3:PPO": "Stable-Baselines3 PPO: ...", ...}``: every algorithm an installed SB3 package
    (``prefix`` ``sb3`` or ``sb3_contrib``) exports, for ``daedalus list agents``."""
    package = importlib.import_module(PACKAGES[prefix][0])
    from stable_baselines3.common.base_class import BaseAlgorithm

    out: dict[str, str] = {}
    for name in sorted(dir(package)):
        algo = getattr(package, name)
        if name.startswith("_") or not (inspect.isclass(algo) and issubclass(algo, BaseAlgorithm)):
            continue
        doc = (algo.__doc__ or "").strip().splitlines()
        label = "Stable-Baselines3" if prefix == "sb3" else "SB3-Contrib"
        out[f"{prefix}:{name}"] = f"{label} {name}" + (f": {doc[0].strip()}" if doc else "")
    return out


@functools.cache
def sb3_agent_spec(agent_id: str) -> AgentSpec:
    """The AgentSpec of ``sb3:NAME`` / ``sb3_contrib:NAME`` (what the registry returns for it)."""
    algo = algorithm_class(agent_id)
    doc = (algo.__doc__ or "").strip().splitlines()
    return AgentSpec(
        agent_id=agent_id,
        agent_factory=functools.partial(make_sb3_agent, agent_id),
        training_wrapper=train_sb3,
        description=f"Stable-Baselines3 {algo.__name__}" + (f": {doc[0].strip()}" if doc else ""),
        config_class=sb3_config_class(agent_id, algo),
        check_profile=check_sb3_profile,
        action_spaces=ACTION_SPACES.get(algo.__name__),
    )


def check_sb3_profile(profile: Any) -> None:
    """Profile validation: SB3 steps its vector env in the training process (``rollout.backend: local``)."""
    if profile.backend != "local":
        raise profile.fail(
            ("rollout", "backend"),
            f"agent '{profile.agent_id}' steps its envs in SB3's own vector env, in the training process: rollout.backend: {profile.backend} does not apply",
            "Remove rollout.backend; rollout.vectorization: async runs the copies in subprocesses (SB3's SubprocVecEnv).",
        )


# --------------------------------------------------------------------------- config


@dataclass
class SB3RunConfig:
    """Daedalus's own keys of an SB3 agent's config: the training schedule (as for built-ins).

    The algorithm's constructor arguments are added per class by :func:`sb3_config_class`.
    """

    total_steps: int = param(100_000, "Environment steps to train for (SB3's total_timesteps), summed over all env copies.", AT_LEAST_ONE)
    eval_every_steps: int = param(10_000, "Evaluate on separate env copies every this many steps; 0 disables.", NONNEGATIVE)
    eval_episodes: int = param(10, "Episodes per periodic evaluation.", AT_LEAST_ONE)
    eval_deterministic: bool = param(True, "Evaluate with the policy's mode instead of sampling.")
    final_eval_episodes: int = param(20, "Episodes of the evaluation run when training completes (written to eval.json); 0 disables.", NONNEGATIVE)
    target_return: float | None = param(None, "Stop training once a periodic evaluation's mean return reaches this; null disables.")
    checkpoint_every_steps: int = param(50_000, "Write a checkpoint step-<N> every this many steps; 0 disables.", NONNEGATIVE)
    keep_last: int = param(3, "Periodic checkpoints to keep (older ones are deleted by the run store).", NONNEGATIVE)
    log_every_steps: int = param(2_000, "Log metrics (SB3's logger values and Daedalus's charts/ and time/) every this many steps.", AT_LEAST_ONE)
    torch_threads: int = param(1, "torch CPU threads for the run (training and evaluation); 1 is fastest for small MLPs, above all on a busy machine; 0 keeps torch's default.", NONNEGATIVE)
    normalize: Any = param(
        False,
        "SB3's VecNormalize around the training envs (rl-zoo3's normalize): true, or a mapping of its arguments "
        "(norm_obs, norm_reward, clip_obs, clip_reward, gamma, epsilon; gamma defaults to the algorithm's). "
        "The statistics are saved with the agent and applied when it acts.",
    )

    #: The SB3 algorithm class and id (set on each generated subclass).
    algo_class: ClassVar[Any] = None
    agent_id: ClassVar[str] = ""
    #: Constructor arguments SB3 also takes as a schedule (a function of the progress): ``lin_<x>`` allowed.
    schedule_fields: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        check_fields(self)
        if self.algo_class is not None:
            check_sb3_values(self)


def sb3_config_class(agent_id: str, algo: type) -> type:
    """A dataclass with :class:`SB3RunConfig`'s fields, ``policy``, ``policy_kwargs`` and every
    constructor argument of ``algo`` (type and default from its signature, help from its docstring)."""
    helps = _param_help(algo.__doc__ or "")
    schedules: set[str] = set()
    aliases = sorted(getattr(algo, "policy_aliases", {}) or {"MlpPolicy": None})
    fields: list[tuple[str, Any, Any]] = [
        ("policy", str, param("MlpPolicy", "SB3 policy name.", choices=aliases)),
        ("policy_kwargs", dict[str, Any], param({}, "Policy arguments as plain YAML: net_arch, activation_fn (relu, tanh, elu, ...), optimizer_class (adam, adamw, rmsprop, sgd), optimizer_kwargs, log_std_init, ...")),
    ]
    for name, parameter in inspect.signature(algo.__init__).parameters.items():  # type: ignore[misc]
        if name in _FROM_PROFILE:
            fields.append((name, Any, param(None, _FROM_PROFILE[name])))
            continue
        if name in (*_SET_BY_DAEDALUS, "policy_kwargs") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is inspect.Parameter.empty:
            continue
        default = list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
        help_text = helps.get(name, "")
        if name in _CLASS_ARGUMENTS:
            help_text = "Not settable from a profile (it names a class); leave it null."
        fields.append((name, _field_type(parameter), param(default, help_text)))
        if "Callable" in str(parameter.annotation):
            schedules.add(name)
    class_name = "SB3" + re.sub(r"\W", "", algo.__name__) + "Config"
    config_class = dataclasses.make_dataclass(
        class_name, fields, bases=(SB3RunConfig,), namespace={"algo_class": algo, "agent_id": agent_id, "schedule_fields": frozenset(schedules)}
    )
    config_class.__doc__ = f"The config of '{agent_id}': Daedalus's schedule keys and {algo.__name__}'s constructor arguments."
    config_class.__module__ = __name__
    return config_class


def _field_type(parameter: inspect.Parameter) -> Any:
    """The config type of a constructor argument: its annotation when it is made of int, float,
    bool, str and None; ``float | str`` for schedules (``lin_<x>``); anything else ``Any``."""
    annotation = parameter.annotation
    plain: dict[Any, Any] = {int: int, float: float, bool: bool, str: str, type(None): type(None)}
    if annotation in plain:
        return annotation
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    if args and all(arg in plain for arg in args):
        return annotation
    if args and any("Callable" in str(arg) for arg in args) and float in args:
        return float | str | None if type(None) in args else float | str
    return Any


def _param_help(doc: str) -> dict[str, str]:
    """``:param name: text`` entries of an SB3 docstring, first sentence, whitespace collapsed."""
    out = {}
    for match in re.finditer(r":param (\w+):(.*?)(?=\n\s*:param |\n\s*:return|\Z)", doc, re.S):
        text = " ".join(match.group(2).split())
        out[match.group(1)] = text.split(". ")[0].rstrip(".") + "." if text else ""
    return out


def check_sb3_values(config: Any) -> None:
    """What the type check cannot see; raises ValueError naming the field first (``field: ...``)."""
    algo = type(config).algo_class
    for name, reason in _FROM_PROFILE.items():
        if getattr(config, name, None) is not None:
            raise ValueError(f"{name}: {reason}")
    for name in _CLASS_ARGUMENTS:
        if getattr(config, name, None) is not None:
            raise ValueError(f"{name}: '{name}' names a class, which a profile cannot do (nothing is imported by name); remove it")
    kwargs = config.policy_kwargs
    if not isinstance(kwargs, dict):
        raise ValueError(f"policy_kwargs: policy_kwargs must be a mapping, got {kwargs!r}")
    policy_class = (getattr(algo, "policy_aliases", {}) or {}).get(config.policy)
    accepted = _accepted_names(policy_class) if policy_class is not None else None
    for key, value in kwargs.items():
        if accepted is not None and key not in accepted:
            hint = closest(str(key), sorted(accepted), n=1)
            raise ValueError(
                f"policy_kwargs: unknown key policy_kwargs.{key} for {algo.__name__}'s {config.policy}"
                + (f" (did you mean '{hint[0]}'?)" if hint else f" (it takes {', '.join(sorted(accepted))})")
            )
        if key == "activation_fn" and value not in ACTIVATIONS:
            hint = closest(str(value), list(ACTIVATIONS), n=1)
            raise ValueError(
                f"policy_kwargs: policy_kwargs.activation_fn '{value}' is not one of {', '.join(ACTIVATIONS)}"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
            )
        if key == "optimizer_class" and value not in OPTIMIZERS:
            raise ValueError(f"policy_kwargs: policy_kwargs.optimizer_class '{value}' is not one of {', '.join(OPTIMIZERS)}")
        if key.endswith(("_class", "_fn")) and key not in ("activation_fn", "optimizer_class"):
            raise ValueError(f"policy_kwargs: policy_kwargs.{key} names a class, which a profile cannot do (nothing is imported by name); remove it")
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, str) and field.name in config.schedule_fields and not _LINEAR.fullmatch(value):
            raise ValueError(f"{field.name}: {field.name}: a schedule is written 'lin_<value>' (e.g. lin_0.001), got {value!r}")
    noise = getattr(config, "action_noise", None)
    if noise is not None:
        _check_noise(noise)
    _check_normalize(config.normalize)


#: VecNormalize's arguments a profile may set (``normalize: {...}``), with their types.
NORMALIZE_KEYS: dict[str, type | tuple[type, ...]] = {
    "norm_obs": bool, "norm_reward": bool, "clip_obs": (int, float), "clip_reward": (int, float), "gamma": (int, float), "epsilon": (int, float),
}


def _check_normalize(value: Any) -> None:
    if isinstance(value, bool):
        return
    if not isinstance(value, dict):
        raise ValueError(f"normalize: normalize is true, false or a mapping of VecNormalize's arguments ({', '.join(NORMALIZE_KEYS)}), got {value!r}")
    for key, item in value.items():
        if key not in NORMALIZE_KEYS:
            hint = closest(str(key), list(NORMALIZE_KEYS), n=1)
            raise ValueError(
                f"normalize: unknown key normalize.{key}" + (f" (did you mean '{hint[0]}'?)" if hint else f" (it takes {', '.join(NORMALIZE_KEYS)})")
            )
        expected = NORMALIZE_KEYS[key]
        if isinstance(item, bool) != (expected is bool) or not isinstance(item, expected):
            raise ValueError(f"normalize: normalize.{key} must be {'true or false' if expected is bool else 'a number'}, got {item!r}")


def normalize_kwargs(config: Any) -> dict[str, Any] | None:
    """VecNormalize's keyword arguments from ``config.normalize`` (None when off); ``gamma`` defaults
    to the algorithm's own, as rl-zoo3 sets it."""
    value = config.normalize
    if value is False:
        return None
    kwargs = {} if value is True else dict(value)
    if "gamma" not in kwargs and isinstance(getattr(config, "gamma", None), int | float):
        kwargs["gamma"] = float(config.gamma)
    return kwargs


def _accepted_names(policy_class: type) -> set[str] | None:
    """Keyword arguments a policy class takes (None when it takes ``**kwargs``)."""
    names: set[str] = set()
    for parameter in inspect.signature(policy_class.__init__).parameters.values():  # type: ignore[misc]
        if parameter.kind is parameter.VAR_KEYWORD:
            return None
        names.add(parameter.name)
    return names - {"self", "observation_space", "action_space", "lr_schedule"}


def _check_noise(noise: Any) -> None:
    kinds = ("normal", "ornstein_uhlenbeck")
    if not isinstance(noise, dict) or noise.get("type") not in kinds:
        raise ValueError(f"action_noise: action_noise: write {{type: normal, sigma: 0.1}} (type one of {', '.join(kinds)}), got {noise!r}")
    unknown = set(noise) - {"type", "sigma", "theta", "dt"}
    if unknown:
        raise ValueError(f"action_noise: action_noise has unknown keys {', '.join(sorted(unknown))} (it takes type, sigma, theta, dt)")
    for key in ("sigma", "theta", "dt"):
        if key in noise and (isinstance(noise[key], bool) or not isinstance(noise[key], int | float) or not math.isfinite(noise[key])):
            raise ValueError(f"action_noise: action_noise.{key} must be a number, got {noise[key]!r}")


# --------------------------------------------------------------------------- plain YAML -> constructor arguments


def sb3_kwargs(config: Any, action_space: Any) -> dict[str, Any]:
    """The SB3 constructor's keyword arguments (besides policy, env, seed, device) from a config.

    Lists become tuples where SB3's default is a tuple (``train_freq: [4, step]``), activation
    functions and optimizers come from :data:`ACTIVATIONS` / :data:`OPTIMIZERS`, ``lin_<x>`` is
    a linear schedule, ``action_noise`` a Normal or Ornstein-Uhlenbeck noise of the action size.
    """
    import torch

    algo = type(config).algo_class
    defaults = {n: p.default for n, p in inspect.signature(algo.__init__).parameters.items()}
    own = {f.name for f in dataclasses.fields(SB3RunConfig)} | {"policy"}
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        name = field.name
        if name in own or name in _SET_BY_DAEDALUS:
            continue
        value = getattr(config, name)
        if name == "policy_kwargs":
            value = _policy_kwargs(value, torch)
        elif name == "action_noise" and value is not None:
            value = _action_noise(value, action_space)
        elif isinstance(value, str) and name in config.schedule_fields and _LINEAR.fullmatch(value):
            value = _linear(float(_LINEAR.fullmatch(value).group(1)))  # type: ignore[union-attr]
        elif isinstance(value, list) and isinstance(defaults.get(name), tuple):
            value = tuple(value)
        out[name] = value
    return out


def _policy_kwargs(kwargs: Mapping[str, Any], torch: Any) -> dict[str, Any]:
    out = dict(kwargs)
    if "activation_fn" in out:
        out["activation_fn"] = getattr(torch.nn, ACTIVATIONS[out["activation_fn"]])
    if "optimizer_class" in out:
        out["optimizer_class"] = getattr(torch.optim, OPTIMIZERS[out["optimizer_class"]])
    return out


def _linear(initial: float) -> Callable[[float], float]:
    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def _action_noise(noise: Mapping[str, Any], action_space: Any) -> Any:
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    size = int(np.prod(action_space.shape))
    mean, sigma = np.zeros(size), float(noise.get("sigma", 0.1)) * np.ones(size)
    if noise["type"] == "normal":
        return NormalActionNoise(mean, sigma)
    return OrnsteinUhlenbeckActionNoise(mean, sigma, theta=float(noise.get("theta", 0.15)), dt=float(noise.get("dt", 1e-2)))


def plain_config(config: Any) -> dict[str, Any]:
    """The config as plain JSON values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


# --------------------------------------------------------------------------- spaces as JSON


def space_to_json(space: Any) -> dict[str, Any]:
    """A Gymnasium space as plain JSON: Box low/high/shape/dtype, Discrete n/start,
    MultiDiscrete nvec, MultiBinary n, Dict of those. Infinities are written as ``"inf"``."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return {
            "type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
            "low": _bound_to_json(space.low), "high": _bound_to_json(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {str(k): space_to_json(v) for k, v in space.spaces.items()}}
    raise ValueError(f"cannot describe {space} as JSON (Box, Discrete, MultiDiscrete, MultiBinary and Dict can be)")


_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")


def space_from_json(data: Any) -> Any:
    """Inverse of :func:`space_to_json`; a malformed description is a ValueError saying what is wrong."""
    from gymnasium import spaces

    if not isinstance(data, dict):
        raise ValueError(f"a space description must be an object, got {type(data).__name__}")
    kind = data.get("type")
    if kind == "Box":
        shape, dtype = data.get("shape"), data.get("dtype")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in shape):
            raise ValueError(f"Box 'shape' must be a list of sizes, got {shape!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"Box 'dtype' must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        low, high = _bound_from_json(data.get("low"), shape), _bound_from_json(data.get("high"), shape)
        return spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=tuple(shape), dtype=np.dtype(dtype))
    if kind == "Discrete":
        n: Any = data.get("n")
        start: Any = data.get("start", 0)
        if not _is_int(n) or n < 1 or not _is_int(start):
            raise ValueError(f"Discrete 'n' must be a positive integer, got {n!r}")
        return spaces.Discrete(n, start=start)
    if kind == "MultiDiscrete":
        nvec = data.get("nvec")
        if not isinstance(nvec, list) or not nvec or not all(_is_int(v) and v >= 1 for v in np.ravel(np.asarray(nvec, dtype=object))):
            raise ValueError(f"MultiDiscrete 'nvec' must be a list of positive integers, got {nvec!r}")
        return spaces.MultiDiscrete(np.asarray(nvec, dtype=np.int64))
    if kind == "MultiBinary":
        n = data.get("n")
        if not (_is_int(n) and n >= 1) and not (isinstance(n, list) and n and all(_is_int(v) and v >= 1 for v in n)):
            raise ValueError(f"MultiBinary 'n' must be a positive integer or a list of them, got {n!r}")
        return spaces.MultiBinary(n)
    if kind == "Dict":
        parts = data.get("spaces")
        if not isinstance(parts, dict):
            raise ValueError("Dict 'spaces' must be an object")
        return spaces.Dict({str(k): space_from_json(v) for k, v in parts.items()})
    raise ValueError(f"unknown space type {kind!r} (Box, Discrete, MultiDiscrete, MultiBinary, Dict)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _bound_to_json(values: np.ndarray) -> Any:
    flat = np.asarray(values, dtype=np.float64).ravel()
    items = [v if math.isfinite(v) else ("inf" if v > 0 else "-inf") for v in flat.tolist()]
    if items and all(item == items[0] for item in items):
        return items[0]  # one value for the whole box (images: 0 and 255)
    return items


def _bound_from_json(value: Any, shape: list[int]) -> np.ndarray:
    size = math.prod(shape)

    def number(item: Any) -> float:
        if item in ("inf", "-inf"):
            return float(item)
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise ValueError(f"Box bounds hold numbers or 'inf' / '-inf', got {item!r}")
        return float(item)

    if isinstance(value, list):
        if len(value) != size:
            raise ValueError(f"Box bounds hold {len(value)} values for shape {shape}")
        return np.asarray([number(v) for v in value], dtype=np.float64).reshape(shape)
    return np.full(shape, number(value), dtype=np.float64)


# --------------------------------------------------------------------------- agent


class SB3Agent(TensorAgent):
    """An SB3 model behind Daedalus's agent contract.

    ``model`` is the SB3 algorithm instance; :meth:`predict` is its ``predict``. State:
    ``policy/<name>`` tensors (the policy's ``state_dict``) and ``variables/<name>`` (SB3's
    torch variables, SAC's ``log_ent_coef``), plus JSON: the id, the policy name, the plain
    constructor arguments, the spaces and the counters. The optimizers' state is not saved.
    """

    def __init__(
        self,
        agent_id: str,
        config: Any,
        observation_space: Any,
        action_space: Any,
        device: str = "cpu",
        seed: int | None = None,
    ) -> None:
        super().__init__(name=agent_id)
        self.agent_id = agent_id
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = device
        self.seed = seed
        self.global_step = 0
        self.num_episodes = 0
        self.num_updates = 0
        from daedalus.envs.sb3 import SpacesEnv

        self.model = self.build_model(SpacesEnv(observation_space, action_space), seed)
        #: ``normalize``: VecNormalize's arguments and its running statistics (SB3 ``RunningMeanStd``
        #: objects: while training, the very objects the VecNormalize updates).
        self.normalize = normalize_kwargs(config)
        self.obs_rms: Any = None
        self.ret_rms: Any = None
        if self.normalize is not None:
            if not isinstance(observation_space, spaces.Box):
                raise ProfileError(
                    f"{agent_id}: config.normalize supports Box observations, not {type(observation_space).__name__}; "
                    "remove normalize or flatten the observations."
                )
            from stable_baselines3.common.running_mean_std import RunningMeanStd

            self.obs_rms, self.ret_rms = RunningMeanStd(shape=observation_space.shape), RunningMeanStd(shape=())

    def build_model(self, env: Any, seed: int | None) -> Any:
        """A fresh SB3 model for ``env`` (a Gymnasium env or SB3 VecEnv), seeded like ``PPO(..., seed=seed)``."""
        algo = type(self.config).algo_class
        return algo(self.config.policy, env, seed=seed, device=self.device, **sb3_kwargs(self.config, self.action_space))

    # ---- acting

    def predict(self, obs: Any, deterministic: bool = True) -> Any:
        """Actions for a batch of observations: SB3's ``model.predict`` (clipped / unscaled as SB3 does)."""
        actions, _ = self.model.predict(self.normalize_obs(obs), deterministic=deterministic)
        return actions

    def normalize_obs(self, obs: Any) -> Any:
        """``obs`` as the policy saw it in training: VecNormalize's ``normalize_obs`` with the current
        statistics (``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``), or ``obs`` itself."""
        if self.normalize is None or not self.normalize.get("norm_obs", True):
            return obs
        epsilon, clip = float(self.normalize.get("epsilon", 1e-8)), float(self.normalize.get("clip_obs", 10.0))
        normalized = (np.asarray(obs) - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + epsilon)
        return np.clip(normalized, -clip, clip).astype(np.float32)

    def attach_normalizer(self, vec_normalize: Any) -> None:
        """Share statistics with a training ``VecNormalize``: it starts from this agent's (a resumed
        run's), and this agent acts with what it learns from then on."""
        vec_normalize.obs_rms, vec_normalize.ret_rms = self.obs_rms, self.ret_rms

    # ---- state

    def state_tensors(self) -> dict[str, Any]:
        """The policy's ``state_dict`` and SB3's torch variables (no optimizer state)."""
        import torch

        tensors = {f"policy/{key}": value for key, value in self.model.policy.state_dict().items()}
        for name in self._variable_names():
            value = _attribute(self.model, name)
            if isinstance(value, torch.Tensor):
                tensors[f"variables/{name}"] = value.detach()
        if self.normalize is not None:
            for name, rms in (("obs", self.obs_rms), ("ret", self.ret_rms)):
                tensors[f"vecnormalize/{name}_mean"] = torch.as_tensor(np.asarray(rms.mean, dtype=np.float64))
                tensors[f"vecnormalize/{name}_var"] = torch.as_tensor(np.asarray(rms.var, dtype=np.float64))
        return tensors

    def state_json(self) -> dict[str, Any]:
        """Id, policy, plain constructor arguments, spaces, counters and versions."""
        import stable_baselines3

        return {
            "format": FORMAT,
            "agent_id": self.agent_id,
            "algo_class": type(self.config).algo_class.__name__,
            "policy": self.config.policy,
            "config": plain_config(self.config),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "global_step": int(self.global_step),
            "num_episodes": int(self.num_episodes),
            "num_updates": int(self.num_updates),
            "sb3_version": stable_baselines3.__version__,
            "optimizer_state_saved": False,
            "vecnormalize": None if self.normalize is None else {
                "kwargs": self.normalize, "obs_count": float(self.obs_rms.count), "ret_count": float(self.ret_rms.count),
            },
        }

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        """Restore weights and counters; refuses a checkpoint of another algorithm or other spaces."""
        import torch

        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"not an SB3 agent's checkpoint (format {state.get('format') if isinstance(state, dict) else None!r}, expected {FORMAT!r})")
        if state.get("agent_id") != self.agent_id:
            raise ValueError(f"the checkpoint holds '{state.get('agent_id')}', the profile names '{self.agent_id}'")
        for key, space in (("observation_space", self.observation_space), ("action_space", self.action_space)):
            if state.get(key) is not None and state[key] != space_to_json(space):
                raise ValueError(f"the checkpoint's {key} {state[key]} differs from the environment's {space_to_json(space)}")
        policy = {key.removeprefix("policy/"): value for key, value in tensors.items() if key.startswith("policy/")}
        self.model.policy.load_state_dict(policy, strict=True)
        with torch.no_grad():
            for key, value in tensors.items():
                if key.startswith("variables/"):
                    name = key.removeprefix("variables/")
                    if name not in self._variable_names():
                        raise ValueError(f"unexpected variable '{name}' (this model has {', '.join(self._variable_names()) or 'none'})")
                    _attribute(self.model, name).copy_(value)
        self._load_normalizer(tensors, state.get("vecnormalize"))
        for counter in ("global_step", "num_episodes", "num_updates"):
            value = state.get(counter, 0)
            if not _is_int(value) or value < 0:
                raise ValueError(f"'{counter}' must be a non-negative integer, got {value!r}")
            setattr(self, counter, value)
        self.model.num_timesteps = self.global_step

    def _load_normalizer(self, tensors: dict[str, Any], saved: Any) -> None:
        """VecNormalize statistics from a checkpoint; a checkpoint with them and a profile without
        ``normalize`` (or the other way round) is refused: the policy would see other inputs."""
        has = any(key.startswith("vecnormalize/") for key in tensors)
        if (self.normalize is not None) != has:
            raise ValueError(
                "the checkpoint was saved " + ("with" if has else "without") + " VecNormalize statistics, and the profile's "
                "config.normalize is " + ("off" if has else "on") + ": set config.normalize as the run was trained"
            )
        if not has:
            return
        counts = saved if isinstance(saved, dict) else {}
        for name, rms in (("obs", self.obs_rms), ("ret", self.ret_rms)):
            mean, var = (tensors.get(f"vecnormalize/{name}_{part}") for part in ("mean", "var"))
            if mean is None or var is None or tuple(mean.shape) != tuple(np.shape(rms.mean)) or tuple(var.shape) != tuple(np.shape(rms.var)):
                raise ValueError(f"the checkpoint's VecNormalize statistics for '{name}' are missing or of another shape than {np.shape(rms.mean)}")
            count = counts.get(f"{name}_count")
            if isinstance(count, bool) or not isinstance(count, int | float) or not count > 0:
                raise ValueError(f"the checkpoint's VecNormalize '{name}_count' must be a positive number, got {count!r}")
            rms.mean, rms.var, rms.count = mean.double().numpy().copy(), var.double().numpy().copy(), float(count)

    def _variable_names(self) -> list[str]:
        return list(self.model._get_torch_save_params()[1])


def _attribute(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def make_sb3_agent(
    agent_id: str,
    observation_space: Any,
    action_space: Any,
    config: Any,
    device: str = "cpu",
    seed: int | None = None,
) -> SB3Agent:
    """The agent factory of ``sb3:NAME`` (arguments after ``agent_id`` are picked by name)."""
    return SB3Agent(agent_id, config, observation_space, action_space, device=device, seed=seed)


# --------------------------------------------------------------------------- training


def train_sb3(
    env_factory: Callable[[int | None], Any],
    agent: SB3Agent,
    config: Any,
    artifacts: dict[str, Any],
    save_callback: Callable[..., None] | None = None,
    context: TrainContext | None = None,
) -> SB3Agent:
    """Train with SB3's ``learn(total_timesteps)`` on the profile's envs, through Daedalus's schedule.

    The model is rebuilt on a vector env made like ``make_vec_env(make_env, num_envs, seed)``
    with ``seed=`` the profile's seed, so a run equals ``PPO("MlpPolicy", make_vec_env(...),
    seed=seed).learn(total_steps)`` step for step. A callback forwards SB3's logger values
    (``train/loss``, ``rollout/ep_rew_mean``, ...) and Daedalus's ``charts/`` and ``time/`` rows
    to the run's logger, drives progress, periodic evaluation and checkpoints
    (:class:`~daedalus.algos.common.TrainingSchedule`), emits the hooks, and stops ``learn``
    when the run is interrupted or a hook or ``target_return`` says so.
    """
    from stable_baselines3.common.logger import Logger

    from daedalus.algos.common import TrainingSchedule, default_context
    from daedalus.envs.sb3 import sb3_vec_env

    context = context or default_context(agent.agent_id, env_factory, artifacts, save_callback)
    timed_env = sb3_vec_env(context.make_env, context.num_envs, context.seed, subprocesses=context.vectorization == "async")
    vec_env = timed_env
    if agent.normalize is not None:
        from stable_baselines3.common.vec_env import VecNormalize

        vec_env = VecNormalize(timed_env, **agent.normalize)
        agent.attach_normalizer(vec_env)
    try:
        resumed = agent.global_step > 0
        if resumed:
            print(
                "note: an SB3 run resumes from its weights and step counter only (the optimizer state and the "
                "replay / rollout buffer are not saved): the continuation is not bit-identical to an uninterrupted run",
                file=sys.stderr, flush=True,
            )
        weights = agent.state_tensors() if resumed else None
        agent.model = agent.build_model(vec_env, context.seed)
        if weights is not None:
            agent.load_state(weights, {**agent.state_json()})
        latest: dict[str, float] = {}
        agent.model.set_logger(Logger(None, [_metrics_writer(latest)]))
        # The schedule runs open-ended while SB3 learns (SB3 finishes the rollout that crosses
        # total_steps and learns from it); its last log and evaluation come after learn().
        open_ended = dataclasses.replace(config, total_steps=2**62)
        callback = _callback_class()(agent, latest, timed_env, config.total_steps)
        schedule = TrainingSchedule(agent, open_ended, context, env_factory, artifacts, callback)
        callback.schedule = schedule
        remaining = config.total_steps - agent.global_step
        if remaining > 0:
            agent.model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=not resumed)
        callback.finish_learning()
        agent.global_step = int(agent.model.num_timesteps)
        schedule.config = config
        if not callback.stopped:
            schedule.step(lambda: dict(latest))
        schedule.finish()
    finally:
        vec_env.close()
    return agent


def _metrics_writer(latest: dict[str, float]) -> Any:
    """An SB3 logger output that keeps the last value of every numeric key in ``latest``."""
    from stable_baselines3.common.logger import KVWriter

    class _Latest(KVWriter):
        def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
            _keep_numbers(latest, key_values)

        def close(self) -> None:
            pass

    return _Latest()


def _keep_numbers(latest: dict[str, float], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            latest[key] = float(value)


@functools.lru_cache(maxsize=1)
def _callback_class() -> type:
    """The SB3 callback class (defined on first use: SB3 is an optional package)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class DaedalusCallback(BaseCallback):
        """Forwards SB3's training to Daedalus: steps, episodes, metrics, schedule, hooks, interrupts.

        Also the ``timing`` of the schedule: ``env_time`` from the vector env, ``inference_time``
        = rollout time - env time - evaluation/checkpoint time; learning time is the time
        between the end of a rollout and the start of the next (SB3's ``train()``).
        """

        def __init__(self, agent: SB3Agent, latest: dict[str, float], vec_env: Any, total_steps: int) -> None:
            super().__init__(verbose=0)
            self.agent, self.latest, self.vec_env, self.total_steps = agent, latest, vec_env, total_steps
            self.schedule: Any = None
            self.stopped = False
            self.inference_time = 0.0
            self._returns: list[float] = []
            self._rollout_started = self._env_at_start = self._excluded_at_start = 0.0
            self._steps_at_start = 0
            self._learn_started: float | None = None
            self._updates_seen = 0

        @property
        def env_time(self) -> float:
            return float(self.vec_env.env_time)

        def _metrics(self) -> dict[str, float]:
            return dict(self.latest)

        def _end_of_learning(self) -> None:
            """Count the time since the last rollout as learning; tell the hooks about an update."""
            if self._learn_started is None:
                return
            self.schedule.learn_time += time.perf_counter() - self._learn_started
            self._learn_started = None
            _keep_numbers(self.latest, self.model.logger.name_to_value)
            updates = int(getattr(self.model, "_n_updates", 0))
            if updates != self._updates_seen:
                self._updates_seen = updates
                self.agent.num_updates += 1
                if self.schedule.update_end(self.agent.num_updates, self._metrics):
                    self.stopped = True

        def _on_rollout_start(self) -> None:
            self._end_of_learning()
            self._rollout_started = time.perf_counter()
            self._env_at_start, self._excluded_at_start = self.env_time, self.schedule.excluded_time
            self._steps_at_start = self.agent.global_step

        def _on_step(self) -> bool:
            agent = self.agent
            agent.global_step = int(self.model.num_timesteps)
            for info in self.locals.get("infos", ()):
                episode = info.get("episode") if isinstance(info, dict) else None
                if episode is not None:
                    self._returns.append(float(episode["r"]))
            if agent.global_step < self.total_steps and not self.stopped:
                _keep_numbers(self.latest, self.model.logger.name_to_value)
                if self.schedule.step(self._metrics):
                    self.stopped = True
            return not self.stopped

        def _on_rollout_end(self) -> None:
            now = time.perf_counter()
            excluded = self.schedule.excluded_time - self._excluded_at_start
            self.inference_time += max(now - self._rollout_started - (self.env_time - self._env_at_start) - excluded, 0.0)
            transitions = self.agent.global_step - self._steps_at_start
            returns = np.asarray(self._returns, dtype=np.float64)
            self._returns = []
            if self.schedule.rollout_end(transitions, returns, self.agent.num_updates):
                self.stopped = True
            last = self.schedule.episode_returns[-1] if self.schedule.episode_returns else None
            self.schedule.context.progress.update(steps=self.agent.global_step, episodes=self.agent.num_episodes, last_return=last)
            self._learn_started = time.perf_counter()

        def finish_learning(self) -> None:
            """After ``learn()``: the last ``train()`` counts as learning time."""
            if self.schedule is not None:
                self._end_of_learning()

    return DaedalusCallback
