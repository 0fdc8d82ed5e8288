"""Declaring the parameters of a typed config: help text, allowed range, allowed choices.

Every field of a built-in config is declared with :func:`param`, so that one place
(:func:`daedalus.config.build_config`) checks every value a profile gives before anything
trains, and reports *all* problems with the file, the line and the fix::

    @dataclass
    class MyConfig:
        learning_rate: float = param(3e-4, "Adam learning rate.", POSITIVE)
        gamma: float = param(0.99, "Discount factor.", UNIT)
        hidden_sizes: list[int] = param([64, 64], "Hidden layer sizes.", AT_LEAST_ONE)
        activation: str = param("tanh", "Hidden activation.", choices=("tanh", "relu"))

A range applies to each element of a list. Floats must be finite (no NaN, no infinity)
whatever the range. Checks that relate several fields stay in the config's
``__post_init__`` and raise :class:`ValueError` naming the field first (``"batch_size: ..."``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AT_LEAST_ONE",
    "NONNEGATIVE",
    "POSITIVE",
    "PROBABILITY",
    "UNIT",
    "Range",
    "param",
]


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers; ``None`` ends are unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        """``> 0``, ``>= 1``, ``within [0, 1]``, ``within (0, 1]`` ..."""
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"within {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return "any number"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


#: Strictly positive: learning rates, coefficients that divide.
POSITIVE = Range(low=0, low_open=True)
#: Zero or more: loss coefficients, "0 disables" intervals.
NONNEGATIVE = Range(low=0)
#: At least one: step counts, sizes, episodes.
AT_LEAST_ONE = Range(low=1)
#: Within [0, 1]: discount factors, GAE lambda, epsilons of epsilon-greedy.
UNIT = Range(low=0, high=1)
#: Within (0, 1]: Polyak coefficients, fractions of training.
PROBABILITY = Range(low=0, high=1, low_open=True)


def param(
    default: Any = dataclasses.MISSING,
    help: str = "",
    range: Range | None = None,
    *,
    choices: Sequence[Any] | None = None,
    code: bool = False,
) -> Any:
    """A dataclass field with its help text, range and choices in the field's metadata.

    ``code=True`` marks a reference to user code (``pkg.mod:fn`` / ``file.py:fn``, e.g. a
    custom loss): profile validation imports it, under the run's trust rules, and checks
    that it is callable. Mutable defaults (lists, dicts) are copied for each instance.
    """
    metadata: dict[str, Any] = {"help": help}
    if code:
        metadata["code"] = True
    if range is not None:
        metadata["range"] = range
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, list | dict | set):
        frozen = default
        return dataclasses.field(default_factory=lambda: type(frozen)(frozen), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_value(name: str, value: Any, metadata: Any) -> str | None:
    """The problem with ``value`` for a field with ``metadata`` (None when it is fine).

    The type is checked elsewhere; this checks finiteness, the range and the choices.
    """
    items = value if isinstance(value, list | tuple) else [value]
    value_range: Range | None = metadata.get("range")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            return f"'{name}' must be a finite number, got {item}"
        if value_range is not None and not value_range.contains(item):
            what = "every element of" if isinstance(value, list | tuple) else ""
            return f"{what} '{name}' must be {value_range.describe()}, got {item!r}".strip()
    choices = metadata.get("choices")
    if choices is not None and value is not None and value not in choices:
        return f"'{name}' must be one of {', '.join(map(repr, choices))}, got {value!r}"
    return None


# --------------------------------------------------------------------------- memory estimate


@dataclass
class MemoryEstimate:
    """Bytes a configuration will need, by part (an estimate made before anything is built)."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        """All parts together."""
        return sum(self.parts.values())

    def describe(self) -> str:
        """``replay buffer (buffer_size) 1,490.1 GiB, networks (hidden_sizes) 0.1 GiB``."""
        gib = 1024**3
        return ", ".join(f"{name} {size / gib:,.1f} GiB" for name, size in self.parts.items() if size)


#: Copies of each network's parameters held while training: weights, gradients, Adam's two
#: moments, a target network, and one spare (activations, twin critics' buffers).
_PARAMETER_COPIES = 6
_FLOAT_BYTES = 4


def estimate_memory_bytes(config: Any, observation_space: Any, action_space: Any, num_envs: int) -> MemoryEstimate:
    """Estimate the memory of the sizes a config sets, from the fields built-in configs use.

    Reads ``buffer_size`` (replay: obs, next obs, action, reward and flags per transition),
    ``num_steps`` (on-policy rollout storage per env copy) and ``hidden_sizes`` (an actor and
    a critic MLP). Fields a config does not have count as zero. A deliberately rough figure:
    it only has to tell "fits" from "cannot possibly fit".
    """
    obs_dim = _flat_size(observation_space)
    act_dim = _flat_size(action_space)
    parts: dict[str, int] = {}
    buffer_size = getattr(config, "buffer_size", None)
    if isinstance(buffer_size, int):
        parts["replay buffer (buffer_size)"] = buffer_size * (2 * obs_dim + act_dim + 4) * _FLOAT_BYTES
    num_steps = getattr(config, "num_steps", None)
    if isinstance(num_steps, int):
        parts["rollout storage (num_steps x num_envs)"] = num_steps * num_envs * (obs_dim + act_dim + 6) * _FLOAT_BYTES
    hidden = getattr(config, "hidden_sizes", None)
    if isinstance(hidden, list | tuple) and all(isinstance(h, int) for h in hidden):
        sizes = [obs_dim + act_dim, *hidden, max(act_dim, 1)]
        params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        parts["networks (hidden_sizes)"] = 2 * params * _PARAMETER_COPIES * _FLOAT_BYTES
    return MemoryEstimate(parts)


def _flat_size(space: Any) -> int:
    """Numbers in one flattened sample of ``space`` (1 for a Discrete action)."""
    shape = getattr(space, "shape", None)
    if shape:
        return int(math.prod(shape))
    try:
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            return 1
        return int(spaces.flatdim(space))
    except Exception:
        return 1


def machine_memory_bytes() -> int | None:
    """This machine's memory (or the container's limit when lower); None when unknown."""
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as handle:
            limit = handle.read().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return int(total)


def check_fields(config: Any) -> None:
    """Check every field of a config instance; raise ValueError naming the first bad field.

    Called from each built-in config's ``__post_init__``, so that a config built in Python
    (``PPOConfig(learning_rate=-1)``) is refused like one loaded from a profile (where
    :func:`daedalus.config.build_config` has already reported every problem with its line).
    """
    for config_field in dataclasses.fields(config):
        problem = check_value(config_field.name, getattr(config, config_field.name), config_field.metadata)
        if problem is not None:
            raise ValueError(f"{config_field.name}: {problem}")
