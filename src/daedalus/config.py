"""Profiles: loading YAML, merging defaults, overrides, validation with friendly errors.

A profile file maps profile ids to profiles; the special key ``defaults`` is merged
under every profile's ``config``::

    defaults: {batch_size: 32}
    cartpole_ppo:
      agent_id: ppo
      env_id: CartPole-v1
      config: {total_steps: 100000}

YAML is read with the safe loader and nothing is ever ``eval``-ed. Every problem is
reported as a :class:`~daedalus.errors.ProfileError` naming the file, the line, the
problem and the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.errors import Problems, ProfileError, did_you_mean
from daedalus.params import check_value

#: Keys a profile may have, with what each one holds (used in messages and docs).
PROFILE_KEYS: dict[str, str] = {
    "agent_id": "registered agent id, pkg.mod:Class or file.py:Class",
    "env_id": "Gymnasium id, registered env id, or pkg.mod:make_env",
    "env_args": "mapping passed to the environment constructor",
    "wrappers": "list of wrapper ids or refs, each optionally with args",
    "num_envs": "number of environment copies (integer >= 1)",
    "seed": "integer seed, or null",
    "rollout": "where envs run: {backend: local or subprocess, vectorization: auto, native, sync or async}",
    "callbacks": "hooks: a list of pkg.mod:Obj / file.py:Obj, each optionally {ref: ..., args: {...}}",
    "device": "cpu, cuda, cuda:N or auto",
    "config": "mapping of agent and training parameters",
    "loop": "loop settings for stepwise agents",
    "policies": "multi-agent: named policies, each {config: {...}, trainable: true, checkpoint: RUN[:POLICY]}",
    "policy_mapping": "multi-agent: {agent name prefix: policy}; the longest matching prefix wins, '' matches everyone",
    "tune": "search space for 'daedalus tune': {learning_rate: {loguniform: [1.0e-5, 1.0e-2]}, ...}",
    "description": "free text",
}
REQUIRED_KEYS = ("agent_id", "env_id")
VECTORIZATION_MODES = ("auto", "native", "sync", "async")
#: Where a profile's envs can run (``rollout.backend``).
ROLLOUT_BACKENDS = ("local", "subprocess", "ray")
#: ``rollout.backend: ray`` only: ``daedalus.rollout.ray_source.RayOptions`` (docs/ray.md).
RAY_ROLLOUT_KEYS = (
    "num_workers", "envs_per_worker", "min_returns", "timeout_s", "address", "max_staleness", "max_failures", "cpus_per_worker",
    "steps_per_round",
)
ROLLOUT_KEYS = ("backend", "vectorization", *RAY_ROLLOUT_KEYS)
DEFAULTS_KEY = "defaults"


class ProfileConfig(Mapping[str, Any]):
    """Read-only view of a profile's ``config`` with attribute and item access.

    ``config.batch_size``, ``config["batch_size"]`` and ``config.get("x", 3)`` all work;
    nested mappings are ProfileConfig too. A missing attribute raises an AttributeError
    that lists the keys that exist.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self._data[name])
        except KeyError:
            known = ", ".join(sorted(self._data)) or "none"
            raise AttributeError(
                f"config has no key '{name}'.{did_you_mean(name, list(self._data))} Known keys: {known}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ProfileConfig is read-only; change the profile or use --set")

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is absent."""
        return _wrap(self._data[key]) if key in self._data else default

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain dicts and lists."""
        return copy.deepcopy(self._data)

    def __repr__(self) -> str:
        return f"ProfileConfig({self._data!r})"


def _wrap(value: Any) -> Any:
    return ProfileConfig(value) if isinstance(value, dict) else value


@dataclass
class WrapperRef:
    """One entry of a profile's ``wrappers`` list."""

    ref: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Profile:
    """One validated-on-load profile (defaults merged, overrides applied)."""

    profile_id: str
    agent_id: str
    env_id: str
    env_args: dict[str, Any] = field(default_factory=dict)
    wrappers: list[WrapperRef] = field(default_factory=list)
    num_envs: int = 1
    seed: int | None = 0
    vectorization: str = "auto"
    backend: str = "local"
    #: ``backend: ray``: the rollout section's Ray keys as written (validated), see RAY_ROLLOUT_KEYS.
    ray: dict[str, Any] = field(default_factory=dict)
    callbacks: list[WrapperRef] = field(default_factory=list)
    device: str = "cpu"
    config: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] | None = None
    description: str = ""
    #: The ``tune:`` section as written (bounds read as numbers); only ``daedalus tune`` uses it.
    tune: dict[str, Any] = field(default_factory=dict)
    #: Multi-agent: the named policies (empty: one policy shared by every agent).
    policies: dict[str, PolicySpec] = field(default_factory=dict)
    #: Multi-agent: agent-name prefix -> policy name (see :func:`map_agents`).
    policy_mapping: dict[str, str] = field(default_factory=dict)
    #: Where the profile came from (for messages and for resolving ``file.py:Obj`` refs).
    source: Path | None = None
    #: 1-based line of each key path, e.g. ``("config", "batch_size") -> 12``.
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)
    #: Key paths set by ``--set`` overrides, with the override as the user typed it.
    overridden: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False)

    def where(self, *path: str) -> str:
        """Where the deepest known key along ``path`` was written: ``file:line``, or the ``--set``."""
        src = str(self.source) if self.source else "<profile>"
        for depth in range(len(path), -1, -1):
            override = self.overridden.get(path[:depth])
            if override is not None:
                return f"--set {override}"
            line = self.lines.get(path[:depth])
            if line is not None:
                return f"{src}:{line}"
        return src

    def fail(self, path: tuple[str, ...], problem: str, fix: str) -> ProfileError:
        """A ProfileError for ``path`` in this profile: 'file:line: profile 'x': problem. fix'."""
        return ProfileError(f"{self.where(*path)}: profile '{self.profile_id}': {problem}. {fix}")

    def search_space(self) -> list[TuneParam]:
        """The ``tune:`` section as one :class:`TuneParam` per searched value (empty without one)."""
        return parse_search_space(self.tune, self)[1]

    @property
    def base_dir(self) -> Path:
        """Folder that relative ``file.py:Obj`` references are resolved against."""
        return self.source.parent if self.source else Path.cwd()

    def to_dict(self) -> dict[str, Any]:
        """The profile as it would be written in a YAML file (the resolved profile)."""
        out: dict[str, Any] = {
            "agent_id": self.agent_id,
            "env_id": self.env_id,
            "env_args": copy.deepcopy(self.env_args),
            "wrappers": [{"id": w.ref, "args": copy.deepcopy(w.args)} for w in self.wrappers],
            "num_envs": self.num_envs,
            "seed": self.seed,
            "rollout": {"backend": self.backend, "vectorization": self.vectorization, **copy.deepcopy(self.ray)},
            "device": self.device,
            "config": copy.deepcopy(self.config),
        }
        if self.callbacks:
            out["callbacks"] = [{"ref": c.ref, "args": copy.deepcopy(c.args)} for c in self.callbacks]
        if self.loop is not None:
            out["loop"] = copy.deepcopy(self.loop)
        if self.tune:
            out["tune"] = copy.deepcopy(self.tune)
        if self.policies:
            out["policies"] = {name: spec.to_dict() for name, spec in self.policies.items()}
        if self.policy_mapping:
            out["policy_mapping"] = dict(self.policy_mapping)
        if self.description:
            out["description"] = self.description
        return out


# --------------------------------------------------------------------------- loading


def read_yaml(path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse a profile file with the bounded safe loader (:mod:`daedalus.safe_yaml`).

    Returns the data and a key-path -> line map. Size, nesting depth, alias expansion,
    duplicate keys and tags are checked; each problem is a ProfileError with the line.
    """
    from daedalus.safe_yaml import read_yaml_file

    return read_yaml_file(path)


def load_profiles(
    path: str | Path,
    profile_ids: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
) -> list[Profile]:
    """Load profiles from a YAML file, merge defaults and apply ``--set`` overrides.

    ``profile_ids`` selects profiles (all when empty). Only the shape of each profile is
    checked here; :func:`daedalus.api.validate` resolves agents, envs and typed configs.
    Every problem of every selected profile is reported at once in one ProfileError.
    """
    problems = Problems()
    profiles = read_profiles(path, profile_ids, overrides, problems)
    problems.raise_if_any()
    return profiles


def read_profiles(
    path: str | Path,
    profile_ids: Sequence[str] | None,
    overrides: Sequence[str],
    problems: Problems,
) -> list[Profile]:
    """:func:`load_profiles` that adds the problems it finds to ``problems`` and goes on.

    Returns every selected profile that has a mapping body; a bad value in one is replaced
    by its default (and recorded), so that the caller can go on validating the rest and
    report everything at once. Problems with the file as a whole still raise.
    """
    path = Path(path)
    data, lines = read_yaml(path)
    if data is None:
        raise ProfileError(f"{path}: the file is empty. Add at least one profile with agent_id and env_id.")
    if not isinstance(data, dict):
        raise ProfileError(
            f"{path}:1: the top level must be a mapping of profile ids to profiles, "
            f"not a {type(data).__name__}. Write 'my_profile:' followed by indented keys."
        )
    defaults = data.get(DEFAULTS_KEY) or {}
    if not isinstance(defaults, dict):
        problems.add(
            f"{path}:{lines.get((DEFAULTS_KEY,), 1)}: 'defaults' must be a mapping of config values, "
            f"not a {type(defaults).__name__}. Write e.g. 'defaults: {{batch_size: 32}}'."
        )
        defaults = {}
    available = [k for k in data if k != DEFAULTS_KEY]
    if not available:
        raise ProfileError(f"{path}: the file has no profiles besides 'defaults'. Add one with agent_id and env_id.")
    for key in available:
        if not isinstance(key, str):
            problems.add(
                f"{path}:{lines.get((str(key),), 1)}: profile id {key!r} is a {type(key).__name__}; "
                "profile ids are text. Quote it or rename it (e.g. 'cartpole_1')."
            )
    selected = list(profile_ids) if profile_ids else available
    for pid in selected:
        if pid not in data or pid == DEFAULTS_KEY:
            problems.add(
                f"{path}: no profile '{pid}'.{did_you_mean(str(pid), [str(a) for a in available])} "
                f"Profiles in this file: {', '.join(map(str, available))}."
            )
    parsed_overrides = []
    for text in overrides:
        with problems.collect():
            parsed_overrides.append((text, *parse_override(text)))
    profiles = []
    for pid in selected:
        if pid in data and pid != DEFAULTS_KEY and isinstance(pid, str):
            with problems.collect():
                profiles.append(_build_profile(pid, data[pid], defaults, path, lines, parsed_overrides, problems))
    return profiles


def profile_from_dict(
    profile_id: str, raw: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> Profile:
    """Build a profile from Python values (what ``daedalus.train(agent_id=..., ...)`` uses)."""
    problems = Problems()
    profile = _build_profile(profile_id, dict(raw), dict(defaults or {}), None, {}, [], problems)
    problems.raise_if_any()
    return profile


def _build_profile(
    profile_id: str,
    raw: Any,
    defaults: dict[str, Any],
    path: Path | None,
    lines: dict[tuple[str, ...], int],
    overrides: list[tuple[str, list[str], Any]],
    problems: Problems,
) -> Profile:
    """Check a profile's shape (keys, types, values that need no agent) and build it.

    Problems go to ``problems``; a bad value is replaced by its default so that the rest
    of the profile can still be checked. Raises only when the profile is not a mapping.
    """
    own_lines = {k[1:]: v for k, v in lines.items() if k and k[0] == profile_id}
    own_lines[()] = lines.get((profile_id,), 1)
    probe = Profile(profile_id, "", "", source=path, lines=own_lines)
    if not isinstance(raw, dict):
        raise probe.fail(
            (),
            f"a profile must be a mapping of keys ({', '.join(REQUIRED_KEYS)}, ...), not {type(raw).__name__}",
            "Indent the profile's keys under its id.",
        )
    raw = copy.deepcopy(raw)
    own_config = raw.get("config") or {}
    if not isinstance(own_config, dict):
        problems.add(probe.fail(
            ("config",),
            f"'config' must be a mapping, got {own_config!r} ({type(own_config).__name__})",
            f"Write e.g. 'config: {_example('config')}'.",
        ))
        own_config = {}
    raw["config"] = _deep_merge(copy.deepcopy(defaults), own_config)
    # A value that comes from `defaults:` is reported at its line there.
    for key_path, line in lines.items():
        if key_path[:1] == (DEFAULTS_KEY,) and len(key_path) > 1 and key_path[1] not in own_config:
            own_lines.setdefault(("config", *key_path[1:]), line)
    for text, keys, value in overrides:
        with problems.collect():
            probe.overridden[tuple(_apply_override(raw, keys, value, text))] = text
    if not isinstance(raw["config"], dict):
        problems.add(probe.fail(
            ("config",), f"'config' must be a mapping, got {raw['config']!r}", f"Write e.g. 'config: {_example('config')}'."
        ))
        raw["config"] = {}

    suggested: set[str] = set()  # required keys an unknown key is probably a typo of
    if "vectorization" in raw:
        problems.add(probe.fail(
            ("vectorization",),
            "'vectorization' moved under 'rollout' (one section says where envs run)",
            f"Write 'rollout: {{vectorization: {raw['vectorization']}}}'.",
        ))
        del raw["vectorization"]
    for key in list(raw):
        if key not in PROFILE_KEYS:
            hint = did_you_mean(str(key), list(PROFILE_KEYS))
            suggested.update(k for k in REQUIRED_KEYS if f"'{k}'" in hint)
            problems.add(probe.fail(
                (str(key),),
                f"unknown key '{key}'",
                f"{hint.strip() or 'Remove it.'} Valid keys: {', '.join(PROFILE_KEYS)}. "
                "Agent parameters go under 'config'.",
            ))
            del raw[key]
    for key in REQUIRED_KEYS:
        if raw.get(key) in (None, ""):
            if key not in suggested:  # else the typo's message already says it
                problems.add(probe.fail((), f"'{key}' is missing", f"Add '{key}: ...' ({PROFILE_KEYS[key]})."))
            raw[key] = ""

    def expect(key: str, ok: bool, expected: str, default: Any) -> None:
        if not ok:
            value = raw[key]
            problems.add(probe.fail(
                (key,),
                f"'{key}' must be {expected}, got {value!r} ({type(value).__name__})",
                f"Write e.g. '{key}: {_example(key)}'.",
            ))
            raw[key] = default

    for key in ("agent_id", "env_id", "device", "description"):
        if key in raw:
            expect(key, isinstance(raw[key], str), "a string", "")
    rollout = raw.get("rollout") or {}
    if not isinstance(rollout, dict):
        problems.add(probe.fail(("rollout",), f"'rollout' must be a mapping, got {rollout!r}", "Write e.g. 'rollout: {backend: local, vectorization: auto}'."))
        rollout = {}
    for key in rollout:
        if key not in ROLLOUT_KEYS:
            problems.add(probe.fail(
                ("rollout", str(key)), f"unknown rollout key '{key}'",
                f"{did_you_mean(str(key), ROLLOUT_KEYS).strip() or 'Remove it.'} Rollout keys: {', '.join(ROLLOUT_KEYS)}.",
            ))
    for key, allowed in (("backend", ROLLOUT_BACKENDS), ("vectorization", VECTORIZATION_MODES)):
        value = rollout.get(key)
        if value is not None and value not in allowed:
            problems.add(probe.fail(
                ("rollout", key), f"unknown rollout {key} {value!r}",
                f"Use one of: {', '.join(allowed)}.{did_you_mean(str(value), allowed)}",
            ))
            rollout[key] = None
    ray_options = _parse_ray_rollout(rollout, probe, problems)
    if "env_args" in raw:
        raw["env_args"] = raw["env_args"] or {}
        expect("env_args", isinstance(raw["env_args"], dict), "a mapping", {})
    if "num_envs" in raw:
        ok = _is_int(raw["num_envs"]) and 1 <= raw["num_envs"] <= MAX_NUM_ENVS
        expect("num_envs", ok, f"an integer from 1 to {MAX_NUM_ENVS}", 1)
    if "seed" in raw:
        ok = raw["seed"] is None or (_is_int(raw["seed"]) and 0 <= raw["seed"] < 2**63)
        expect("seed", ok, "a non-negative integer below 2**63, or null", 0)
    if raw.get("device"):
        device_problem = check_device(raw["device"])
        if device_problem is not None:
            problems.add(probe.fail(("device",), device_problem[0], device_problem[1]))
    if "loop" in raw and raw["loop"] is not None:
        expect("loop", isinstance(raw["loop"], dict), "a mapping", None)
    wrappers: list[WrapperRef] = []
    with problems.collect():
        wrappers = _parse_wrappers(raw.get("wrappers") or [], probe)
    callbacks: list[WrapperRef] = []
    with problems.collect():
        callbacks = _parse_refs(raw.get("callbacks") or [], probe, "callbacks", "ref")
    tune: dict[str, Any] = {}
    with problems.collect():
        tune = parse_search_space(raw.get("tune"), probe)[0]
    policies: dict[str, PolicySpec] = {}
    mapping: dict[str, str] = {}
    with problems.collect():
        policies, mapping = _parse_policies(raw.get("policies"), raw.get("policy_mapping"), probe)

    return Profile(
        profile_id=profile_id,
        agent_id=raw["agent_id"],
        env_id=raw["env_id"],
        env_args=raw.get("env_args") or {},
        wrappers=wrappers,
        num_envs=raw.get("num_envs", 1),
        seed=raw.get("seed", 0),
        vectorization=rollout.get("vectorization") or "auto",
        backend=rollout.get("backend") or "local",
        ray=ray_options,
        callbacks=callbacks,
        device=raw.get("device", "cpu"),
        config=raw["config"],
        loop=raw.get("loop"),
        description=raw.get("description", ""),
        tune=tune,
        policies=policies,
        policy_mapping=mapping,
        source=path,
        lines=own_lines,
        overridden=probe.overridden,
    )


#: More env copies than this in one process is a typo, not a plan (each copy is an env object).
MAX_NUM_ENVS = 4096
_DEVICE_FIX = "Use 'device: cpu', or 'device: auto' to take a GPU when there is one."


def check_device(device: str) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``device`` is not a device of this machine, else None.

    ``cpu`` and ``auto`` always work; ``cuda``, ``cuda:N`` and ``mps`` are checked with
    torch (imported only for them).
    """
    import re

    if device in ("cpu", "auto"):
        return None
    match = re.fullmatch(r"cuda(?::(\d+))?|mps", device)
    if match is None:
        return f"unknown device '{device}'", f"{_DEVICE_FIX} Devices are cpu, auto, cuda, cuda:N or mps."
    import torch

    if device == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            return "device 'mps' is not available on this machine", _DEVICE_FIX
        return None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return f"device '{device}' is not available: torch sees no CUDA GPU on this machine", _DEVICE_FIX
    index = int(match.group(1) or 0)
    if index >= count:
        return f"device '{device}' does not exist: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}", _DEVICE_FIX
    return None


def resolve_device(device: str) -> str:
    """The device an agent is built on: ``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _parse_wrappers(items: Any, probe: Profile) -> list[WrapperRef]:
    return _parse_refs(items, probe, "wrappers", "id")


def _parse_refs(items: Any, probe: Profile, section: str, id_key: str) -> list[WrapperRef]:
    """A list of ids or references, each ``- X``, ``- {<id_key>: X, args: {...}}`` or ``- {X: {...}}``."""
    fix = f"Write each entry as '- Name' or '- {{{id_key}: Name, args: {{...}}}}'."
    if not isinstance(items, list):
        raise probe.fail((section,), f"'{section}' must be a list, got {type(items).__name__}", fix)
    out = []
    for i, item in enumerate(items):
        where = (section, str(i))
        if isinstance(item, str):
            out.append(WrapperRef(item))
        elif isinstance(item, dict) and id_key in item:
            extra = set(item) - {id_key, "args"}
            if extra:
                raise probe.fail(where, f"unknown {section} key(s) {sorted(extra)}", fix)
            args = item.get("args") or {}
            if not isinstance(args, dict):
                raise probe.fail(where, f"{section} 'args' must be a mapping", fix)
            out.append(WrapperRef(str(item[id_key]), args))
        elif isinstance(item, dict) and len(item) == 1:
            (ref, args), = item.items()
            if not isinstance(args, dict | None):
                raise probe.fail(where, f"arguments of '{ref}' must be a mapping", fix)
            out.append(WrapperRef(str(ref), args or {}))
        else:
            raise probe.fail(where, f"cannot read {section} entry {item!r}", fix)
    return out


def _example(key: str) -> str:
    return {
        "agent_id": "ppo",
        "env_id": "CartPole-v1",
        "env_args": "{}",
        "num_envs": "8",
        "seed": "0",
        "config": "{total_steps: 10000}",
        "loop": "{max_episodes: 100}",
        "rollout": "{backend: local, vectorization: auto}",
        "callbacks": "[my_project.hooks:StopAt]",
        "device": "cpu",
        "description": "'my experiment'",
        "tune": "{learning_rate: {loguniform: [1.0e-5, 1.0e-2]}}",
    }.get(key, "...")


def _parse_ray_rollout(rollout: dict[str, Any], probe: Any, problems: Problems) -> dict[str, Any]:
    """The Ray keys of a ``rollout`` section, checked; every problem goes to ``problems``."""
    given = {key: rollout[key] for key in RAY_ROLLOUT_KEYS if key in rollout}
    if given and rollout.get("backend") != "ray":
        problems.add(probe.fail(
            ("rollout", next(iter(given))), f"rollout keys {', '.join(given)} apply to 'backend: ray' only",
            "Add 'backend: ray' to the rollout section, or remove them.",
        ))
        return {}

    def count(value: Any, low: int, nullable: bool) -> bool:
        return (nullable and value is None) or (_is_int(value) and low <= value <= 100_000)

    def positive(value: Any, nullable: bool) -> bool:
        return (nullable and value is None) or (isinstance(value, int | float) and not isinstance(value, bool) and value > 0)

    rules: dict[str, tuple[Callable[[Any], bool], str, str]] = {
        "num_workers": (lambda v: count(v, 1, False), "an integer >= 1", "4"),
        "envs_per_worker": (lambda v: count(v, 1, True), "an integer >= 1, or null (num_envs split over the workers)", "8"),
        "min_returns": (lambda v: count(v, 1, True), "an integer >= 1, or null (every worker)", "2"),
        "timeout_s": (lambda v: positive(v, True), "a number of seconds > 0, or null (no limit)", "30"),
        "address": (lambda v: v is None or (isinstance(v, str) and v.strip() != ""), "'HOST:PORT', 'auto' or null (a local Ray)", "127.0.0.1:6379"),
        "max_staleness": (lambda v: count(v, 0, False), "an integer >= 0 (updates behind the current policy)", "1"),
        "max_failures": (lambda v: count(v, 0, False), "an integer >= 0", "3"),
        "cpus_per_worker": (lambda v: positive(v, False), "a number > 0", "1"),
        "steps_per_round": (lambda v: count(v, 1, True), "an integer >= 1, or null (32)", "32"),
    }
    checked: dict[str, Any] = {}
    for key, value in given.items():
        ok, expected, example = rules[key]
        if not ok(value):
            problems.add(probe.fail(("rollout", key), f"rollout.{key} must be {expected}, got {value!r}", f"Write e.g. '{key}: {example}'."))
            continue
        checked[key] = value
    workers = checked.get("num_workers", 2)
    if checked.get("min_returns") is not None and checked["min_returns"] > workers:
        problems.add(probe.fail(
            ("rollout", "min_returns"), f"rollout.min_returns ({checked['min_returns']}) is more than num_workers ({workers})",
            "Wait for at most every worker: lower min_returns or raise num_workers.",
        ))
        del checked["min_returns"]
    return checked


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base``; nested mappings merge key by key, anything else replaces."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# --------------------------------------------------------------------------- policies (multi-agent)

#: Keys of one entry of ``policies:``.
POLICY_KEYS = ("config", "trainable", "checkpoint", "random", "agent_id_input")
#: The one policy of a profile without ``policies:`` (every agent shares it).
SHARED_POLICY = "default"


@dataclass
class PolicySpec:
    """One named policy of a multi-agent profile (an entry of ``policies:``).

    ``config`` is merged over the profile's ``config`` for this policy; ``trainable: false``
    freezes it; ``checkpoint`` (``RUN`` or ``RUN:POLICY``) starts it from another run's weights;
    ``random: true`` makes it a uniformly random player (legal moves where the env masks), never
    trained: an opponent to train against. ``agent_id_input: true`` appends a one-hot of the
    agent's index within the policy's group to each observation, so a shared policy can tell its
    agents apart (1-D observations).
    """

    config: dict[str, Any] = field(default_factory=dict)
    trainable: bool = True
    checkpoint: str | None = None
    random: bool = False
    agent_id_input: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in a profile."""
        out: dict[str, Any] = {"config": copy.deepcopy(self.config), "trainable": self.trainable}
        if self.random:
            out["random"] = True
        if self.agent_id_input:
            out["agent_id_input"] = True
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint
        return out


def _parse_policies(raw_policies: Any, raw_mapping: Any, profile: Profile) -> tuple[dict[str, PolicySpec], dict[str, str]]:
    """Check ``policies:`` and ``policy_mapping:``; every problem at once, with its line and fix."""
    problems = Problems()
    policies: dict[str, PolicySpec] = {}
    example = "policies: {adversary: {config: {learning_rate: 3.0e-4}}, prey: {}}"
    if raw_policies is not None:
        if not isinstance(raw_policies, dict) or not raw_policies:
            raise profile.fail(("policies",), f"'policies' must be a non-empty mapping of names to policies, got {raw_policies!r}", f"Write e.g. '{example}'.")
        for name, entry in raw_policies.items():
            where = ("policies", str(name))
            if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
                problems.add(profile.fail(where, f"policy name {name!r} must be letters, digits, '-', '_' or '.'", "Rename it."))
                continue
            entry = {} if entry is None else entry
            if not isinstance(entry, dict):
                problems.add(profile.fail(where, f"policy '{name}' must be a mapping, got {entry!r}", f"Write e.g. '{name}: {{config: {{learning_rate: 3.0e-4}}}}'."))
                continue
            unknown = [k for k in entry if k not in POLICY_KEYS]
            for key in unknown:
                problems.add(profile.fail(
                    (*where, str(key)), f"unknown policy key '{key}'",
                    f"{did_you_mean(str(key), POLICY_KEYS).strip() or 'Remove it.'} Policy keys: {', '.join(POLICY_KEYS)}.",
                ))
            config = entry.get("config") or {}
            if not isinstance(config, dict):
                problems.add(profile.fail((*where, "config"), f"'config' of policy '{name}' must be a mapping, got {config!r}", "Write e.g. 'config: {learning_rate: 3.0e-4}'."))
                config = {}
            trainable = entry.get("trainable", True)
            if not isinstance(trainable, bool):
                problems.add(profile.fail((*where, "trainable"), f"'trainable' of policy '{name}' must be true or false, got {trainable!r}", "Write 'trainable: false' to freeze it."))
                trainable = True
            checkpoint = entry.get("checkpoint")
            if checkpoint is not None and (not isinstance(checkpoint, str) or not checkpoint):
                problems.add(profile.fail((*where, "checkpoint"), f"'checkpoint' of policy '{name}' must be 'RUN' or 'RUN:POLICY', got {checkpoint!r}", "Name a run folder or run id."))
                checkpoint = None
            random = entry.get("random", False)
            if not isinstance(random, bool):
                problems.add(profile.fail((*where, "random"), f"'random' of policy '{name}' must be true or false, got {random!r}", "Write 'random: true' for a random player."))
                random = False
            if random and (config or checkpoint is not None):
                problems.add(profile.fail(where, f"policy '{name}' is random: it takes no 'config' or 'checkpoint'", "Remove them, or 'random: true'."))
            agent_id_input = entry.get("agent_id_input", False)
            if not isinstance(agent_id_input, bool):
                problems.add(profile.fail((*where, "agent_id_input"), f"'agent_id_input' of policy '{name}' must be true or false, got {agent_id_input!r}", "Write 'agent_id_input: true'."))
                agent_id_input = False
            policies[name] = PolicySpec(dict(config), trainable and not random, checkpoint, random, agent_id_input)
    mapping: dict[str, str] = {}
    if raw_mapping is not None:
        if not isinstance(raw_mapping, dict) or not raw_mapping:
            raise profile.fail(("policy_mapping",), f"'policy_mapping' must be a mapping of agent-name prefixes to policy names, got {raw_mapping!r}", "Write e.g. 'policy_mapping: {adversary_: adversary, agent_: prey}'.")
        if not policies:
            problems.add(profile.fail(("policy_mapping",), "'policy_mapping' names policies, but the profile has no 'policies' section", f"Add one, e.g. '{example}'."))
        for prefix, name in raw_mapping.items():
            where = ("policy_mapping", str(prefix))
            if not isinstance(prefix, str):
                problems.add(profile.fail(where, f"prefix {prefix!r} must be a string ('' matches every agent)", "Quote it."))
            elif not isinstance(name, str) or (policies and name not in policies):
                problems.add(profile.fail(
                    where, f"prefix '{prefix}' maps to {name!r}, which is not a policy of this profile",
                    f"Use one of: {', '.join(policies) or '(none: add a policies section)'}.{did_you_mean(str(name), list(policies))}",
                ))
            else:
                mapping[prefix] = name
    elif len(policies) > 1:
        problems.add(profile.fail(("policies",), f"{len(policies)} policies but no 'policy_mapping' saying which agents each one acts for", "Add e.g. 'policy_mapping: {adversary_: adversary, agent_: prey}' (the longest matching prefix wins)."))
    problems.raise_if_any()
    return policies, mapping


def map_agents(agents: Sequence[str], mapping: Mapping[str, str], where: str = "policy_mapping") -> dict[str, list[str]]:
    """Policy name -> the agents it acts for, each agent mapped by the **longest** prefix of its name.

    ``""`` matches every agent (the fallback). An agent that no prefix matches is an error listing
    the env's agent names and the prefixes. Policies keep the order in which ``mapping`` names
    them; agents keep the env's order. (Coltra sorts by policy-name length instead, so that
    ``{"a": p, "ab": q}`` can map ``"abc"`` to ``p``; here it maps to ``q``.)
    """
    prefixes = sorted(mapping, key=len, reverse=True)
    groups: dict[str, list[str]] = {name: [] for name in dict.fromkeys(mapping.values())}
    unmatched = []
    for agent in agents:
        prefix = next((p for p in prefixes if agent.startswith(p)), None)
        if prefix is None:
            unmatched.append(agent)
        else:
            groups[mapping[prefix]].append(agent)
    if unmatched:
        listed = ", ".join(repr(p) for p in mapping)
        raise ProfileError(
            f"{where}: no prefix matches agent(s) {', '.join(unmatched)} (the env's agents: {', '.join(agents)}; "
            f"prefixes: {listed}). Add a prefix for them, or '' to send every other agent to one policy."
        )
    return {name: members for name, members in groups.items() if members}


# --------------------------------------------------------------------------- search spaces (tune:)

#: The distributions a ``tune:`` entry can draw from, each with the form it is written in.
TUNE_DISTRIBUTIONS: dict[str, str] = {
    "loguniform": "{loguniform: [low, high]}: a float, log scale, 0 < low < high",
    "uniform": "{uniform: [low, high]}: a float, low < high",
    "int": "{int: [low, high], step: 1, log: false}: an integer from low to high, both included",
    "choice": "{choice: [a, b, ...]}: one of the values listed",
}
#: Options a distribution takes besides its bounds or values.
TUNE_OPTIONS: dict[str, tuple[str, ...]] = {"int": ("step", "log")}
#: Profile keys (outside ``config``) that ``tune:`` may search.
TUNABLE_PROFILE_KEYS = ("num_envs",)
_TUNE_EXAMPLE = "Write e.g. 'learning_rate: {loguniform: [1.0e-5, 1.0e-2]}' or 'num_steps: {choice: [32, 64, 128]}'"


@dataclass(frozen=True)
class TuneParam:
    """One value a profile's ``tune:`` section searches.

    ``key`` is the key as written (``learning_rate``, ``config.learning_rate`` or ``num_envs``);
    ``name`` is the value searched: a config field, or ``num_envs`` when ``in_config`` is false.
    ``low``/``high`` (with ``step``, ``log``) bound loguniform, uniform and int; ``choices``
    lists the values of a choice.
    """

    key: str
    name: str
    in_config: bool
    distribution: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        """``loguniform [1e-05, 0.01]``, ``int [4, 16] step 2``, ``choice [32, 64]``."""
        if self.distribution == "choice":
            return f"choice {list(self.choices)}"
        extra = (f" step {self.step}" if self.step not in (None, 1) else "") + (" log" if self.log and self.distribution == "int" else "")
        return f"{self.distribution} [{self.low!r}, {self.high!r}]{extra}"


def parse_search_space(tune: Any, profile: Profile) -> tuple[dict[str, Any], list[TuneParam]]:
    """Check a ``tune:`` section's shape; returns it (bounds read as numbers) and its parameters.

    Keys are config fields, written ``learning_rate`` or ``config.learning_rate``, or
    ``num_envs``. Every problem (unknown distribution, bad bounds, a key that cannot be
    searched) is reported at once, with its line and the fix. Whether a key is a field of
    the agent's config is checked by :func:`check_search_space`, which needs the agent.
    """
    if tune is None:
        return {}, []
    if not isinstance(tune, dict):
        raise profile.fail(
            ("tune",), f"'tune' must be a mapping of keys to distributions, got {tune!r} ({type(tune).__name__})", f"{_TUNE_EXAMPLE}."
        )
    problems = Problems()
    cleaned: dict[str, Any] = {}
    params: list[TuneParam] = []
    seen: dict[str, str] = {}
    for key, spec in tune.items():
        where = ("tune", str(key))
        parts = str(key).split(".")
        if not isinstance(key, str) or not all(parts):
            problems.add(profile.fail(where, f"tune key {key!r} is not a field name", "Write a config field (learning_rate or config.learning_rate) or num_envs."))
            continue
        in_config = parts[0] not in PROFILE_KEYS or parts[0] == "config"
        path = parts[1:] if parts[0] == "config" else parts
        if not in_config and path != ["num_envs"]:
            problems.add(profile.fail(
                where, f"'{key}' cannot be tuned: tune searches config fields and {', '.join(TUNABLE_PROFILE_KEYS)}",
                "Search a config field (learning_rate or config.learning_rate) or num_envs; the seed of each run is set with --seeds.",
            ))
            continue
        if len(path) != 1:
            problems.add(profile.fail(
                where, f"tune key '{key}' names a value inside a config field",
                f"Tune the whole field, e.g. 'config.{path[0] if path else 'FIELD'}: {{choice: [...]}}'.",
            ))
            continue
        name = path[0]
        if name in seen:
            problems.add(profile.fail(where, f"'{name}' is tuned twice (as '{seen[name]}' and as '{key}')", "Keep one of the two entries."))
            continue
        seen[name] = key
        with problems.collect():
            value, param = _parse_distribution(key, name, in_config, spec, profile)
            cleaned[key] = value
            params.append(param)
    problems.raise_if_any()
    return cleaned, params


def _parse_distribution(key: str, name: str, in_config: bool, spec: Any, profile: Profile) -> tuple[dict[str, Any], TuneParam]:
    where = ("tune", key)
    forms = "loguniform: [low, high], uniform: [low, high], int: [low, high] (with step, log), choice: [a, b, ...] (docs/tuning.md)"
    if not isinstance(spec, dict):
        raise profile.fail(where, f"'tune.{key}' must be a mapping naming one distribution, got {spec!r}", f"Use one of: {forms}.")
    named = [k for k in spec if k in TUNE_DISTRIBUTIONS]
    options = {option for options in TUNE_OPTIONS.values() for option in options}
    unknown = [k for k in spec if k not in TUNE_DISTRIBUTIONS and k not in options]
    if unknown:
        word = str(unknown[0])
        hint = did_you_mean(word, list(TUNE_DISTRIBUTIONS) + sorted(options)).strip()
        raise profile.fail((*where, word), f"'tune.{key}': unknown distribution '{word}'", f"{hint + ' ' if hint else ''}Use one of: {forms}.")
    if len(named) != 1:
        problem = "names no distribution" if not named else f"names {len(named)} distributions ({', '.join(named)})"
        raise profile.fail(where, f"'tune.{key}' {problem}", f"Name exactly one of: {forms}.")
    distribution = named[0]
    form = TUNE_DISTRIBUTIONS[distribution]
    for option in spec:
        if option != distribution and option not in TUNE_OPTIONS.get(distribution, ()):
            allowed = TUNE_OPTIONS.get(distribution, ())
            raise profile.fail(
                (*where, option), f"'tune.{key}': {distribution} takes no '{option}'",
                f"Write {form}." + (f" Its options: {', '.join(allowed)}." if allowed else ""),
            )
    values = spec[distribution]
    if distribution == "choice":
        if not isinstance(values, list) or len(values) < 2:
            raise profile.fail((*where, "choice"), f"'tune.{key}': choice needs a list of at least two values, got {values!r}", "List the values to try, e.g. '{choice: [32, 64, 128]}'; a single value belongs under config.")
        for value in values:
            if not _is_choice_value(value):
                raise profile.fail((*where, "choice"), f"'tune.{key}': choice value {value!r} is not a number, text, true/false, null or a list of those", "List plain values, e.g. '{choice: [[64, 64], [128, 128]]}'.")
        for i, value in enumerate(values):
            if any(_same_choice(value, other) for other in values[:i]):
                raise profile.fail((*where, "choice"), f"'tune.{key}': choice lists {value!r} twice", "List each value once.")
        return {"choice": list(values)}, TuneParam(key, name, in_config, "choice", choices=tuple(values))
    bounds = _bounds(values, integers=distribution == "int")
    if bounds is None:
        kind = "integers" if distribution == "int" else "numbers"
        raise profile.fail((*where, distribution), f"'tune.{key}': {distribution} needs [low, high], two finite {kind}, got {values!r}", f"Write {form}.")
    low, high = bounds
    if not low < high:
        raise profile.fail((*where, distribution), f"'tune.{key}': {distribution} bounds [{low!r}, {high!r}] are not low < high", f"Write {form}.")
    if distribution == "loguniform" and low <= 0:
        raise profile.fail((*where, distribution), f"'tune.{key}': loguniform needs 0 < low, got low {low!r}", "Use a positive low bound, or uniform for a range that includes 0.")
    cleaned: dict[str, Any] = {distribution: [low, high]}
    step: int | None = None
    log = False
    if distribution == "int":
        step = spec.get("step", 1)
        log = spec.get("log", False)
        if not _is_int(step) or step < 1:
            raise profile.fail((*where, "step"), f"'tune.{key}': step must be an integer >= 1, got {step!r}", "Write e.g. '{int: [16, 256], step: 16}'.")
        if not isinstance(log, bool):
            raise profile.fail((*where, "log"), f"'tune.{key}': log must be true or false, got {log!r}", "Write e.g. '{int: [16, 256], log: true}'.")
        if log and (step != 1 or low < 1):
            raise profile.fail(where, f"'tune.{key}': a log-scale int needs step 1 and low >= 1", "Drop 'step', or drop 'log: true'.")
        if (high - low) % step:
            fitted = low + (high - low) // step * step
            raise profile.fail((*where, "int"), f"'tune.{key}': high - low ({high - low}) is not a multiple of step {step}", f"Use high {fitted} or {fitted + step}.")
        if "step" in spec:
            cleaned["step"] = step
        if "log" in spec:
            cleaned["log"] = log
    return cleaned, TuneParam(key, name, in_config, distribution, low, high, step, log or distribution == "loguniform")


def _bounds(values: Any, integers: bool) -> tuple[Any, Any] | None:
    """``[low, high]`` as numbers (``'1e-5'``, which YAML 1.1 reads as text, counts), else None."""
    import math

    if not isinstance(values, list) or len(values) != 2:
        return None
    out = []
    for value in values:
        if integers:
            if not _is_int(value):
                return None
        elif isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return None
        else:
            value = float(value)
        if not math.isfinite(value):
            return None
        out.append(value)
    return out[0], out[1]


def _is_choice_value(value: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))


def _same_choice(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def check_search_space(profile: Profile, config_class: type | None, declared: Mapping[str, Any] | None = None) -> None:
    """Check that every value ``tune:`` can draw is one the agent takes; all problems at once.

    With a typed config (``config_class``), each key must be a field and both bounds (or every
    choice) must have the field's type and lie in its declared range and choices; a float
    distribution on an int field is refused. With ``declared`` parameters (stepwise agents),
    each key must be declared. ``num_envs`` must stay within 1 to MAX_NUM_ENVS.
    """
    problems = Problems()
    hints = typing.get_type_hints(config_class) if config_class is not None else {}
    fields = {f.name: f for f in dataclasses.fields(config_class)} if config_class is not None else {}
    for param in profile.search_space():
        where = ("tune", param.key)
        drawn: list[Any] = list(param.choices) if param.distribution == "choice" else [param.low, param.high]
        if not param.in_config:  # num_envs
            ok = param.distribution in ("int", "choice") and all(_is_int(v) and 1 <= v <= MAX_NUM_ENVS for v in drawn)
            if not ok:
                problems.add(profile.fail(where, f"'tune.{param.key}' can draw {param.describe()}, and num_envs is an integer from 1 to {MAX_NUM_ENVS}", "Write e.g. 'num_envs: {choice: [4, 8, 16]}' or '{int: [4, 16]}'."))
            continue
        if config_class is None:
            if declared is not None and param.name not in declared:
                problems.add(profile.fail(
                    where, f"tune key '{param.key}': agent '{profile.agent_id}' has no parameter '{param.name}'",
                    f"{did_you_mean(param.name, list(declared)).strip() or 'Remove it.'} Declared parameters: {', '.join(declared) or 'none'}.",
                ))
            continue
        if param.name not in fields or param.name not in hints:
            problems.add(profile.fail(
                where, f"tune key '{param.key}' is not a config field of agent '{profile.agent_id}'",
                f"{did_you_mean(param.name, list(fields)).strip() or 'Remove it.'} Run 'daedalus describe agent {profile.agent_id}' to see every parameter.",
            ))
            continue
        expected = hints[param.name]
        if param.distribution in ("uniform", "loguniform") and not check_type(0.5, expected)[0]:
            problems.add(profile.fail(
                where, f"'{param.name}' is {type_name(expected)}, and {param.distribution} draws floats",
                "Use '{int: [low, high]}' or '{choice: [...]}'." if check_type(1, expected)[0] else "Use '{choice: [...]}' with values of that type.",
            ))
            continue
        for value in drawn:
            ok, coerced = check_type(value, expected)
            problem = (
                f"'tune.{param.key}' can draw {value!r}, which is not {type_name(expected)}" if not ok
                else check_value(param.name, coerced, fields[param.name].metadata)
            )
            if problem is not None:
                problems.add(profile.fail(
                    where, f"{problem} ('tune.{param.key}' draws {param.describe()})" if ok else problem,
                    "Keep the search space within the values the field takes: change the bounds or the choices. "
                    f"Run 'daedalus describe agent {profile.agent_id}' to see them.",
                ))
                break
    problems.raise_if_any()


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.sub=value``; the value is read as YAML (``1e-3``, ``[64, 64]``, ``null``)."""
    import yaml

    key, sep, raw_value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ProfileError(
            f"--set '{text}': expected KEY=VALUE with a dotted key, e.g. --set config.learning_rate=3e-4 "
            "or --set num_envs=4."
        )
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError:
        value = raw_value
    if not isinstance(value, str | int | float | bool | list | dict | type(None)):
        # Dates and the like: keep what the user typed.
        value = raw_value.strip()
    return key.split("."), value


def _apply_override(raw: dict[str, Any], keys: list[str], value: Any, text: str) -> list[str]:
    """Set ``keys`` in ``raw`` to ``value``; returns the full key path that was set.

    A key that is not a profile key is a config key: ``--set total_steps=1000`` is short
    for ``--set config.total_steps=1000``.
    """
    if keys[0] not in PROFILE_KEYS:
        keys = ["config", *keys]
    node = raw
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ProfileError(
                f"--set {text}: '{'.'.join(keys[: i + 1])}' is a {type(child).__name__}, not a mapping, "
                "so it has no sub-keys. Set it as a whole instead."
            )
        node = child
    node[keys[-1]] = value
    return keys


# --------------------------------------------------------------------------- typed configs


@dataclass(frozen=True)
class FieldInfo:
    """One field of a typed config, for ``describe`` and ``create-default``."""

    name: str
    type_name: str
    default: Any
    help: str


def describe_config(config_class: type) -> list[FieldInfo]:
    """Fields of a dataclass config with their types, defaults and help texts."""
    hints = typing.get_type_hints(config_class)
    out = []
    for f in dataclasses.fields(config_class):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append(FieldInfo(f.name, type_name(hints[f.name]), default, str(f.metadata.get("help", ""))))
    return out


def config_defaults(config_class: type) -> dict[str, Any]:
    """The default value of every field, as plain YAML-able values."""
    return {f.name: _plain(f.default) for f in describe_config(config_class)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build_config(config_class: type, values: Mapping[str, Any], profile: Profile) -> Any:
    """Validate ``values`` against ``config_class`` and return an instance.

    Every key is checked (unknown keys name the closest field, wrong types name the expected
    type, values outside a field's declared range or choices say which values are allowed,
    see :mod:`daedalus.params`) and every problem is reported at once. Checks across fields
    live in the config's ``__post_init__`` and raise ValueError starting with a field name.
    """
    hints = typing.get_type_hints(config_class)
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    problems = Problems()
    kwargs = {}
    for key, value in values.items():
        if key == "rollout_worker":
            problems.add(profile.fail(
                ("config", key), "'config.rollout_worker' moved to the profile's 'rollout' section",
                f"Write 'rollout: {{backend: {'subprocess' if value == 'subprocess' else 'local'}}}' at the profile's top level.",
            ))
            continue
        if key not in hints or key not in fields:
            hint = did_you_mean(str(key), list(fields))
            problems.add(profile.fail(
                ("config", str(key)),
                f"unknown config key '{key}' for agent '{profile.agent_id}'",
                f"{hint.strip() or 'Remove it.'} Run 'daedalus describe agent {profile.agent_id}' "
                "to see every parameter.",
            ))
            continue
        expected = hints[key]
        ok, coerced = check_type(value, expected)
        if not ok:
            problems.add(profile.fail(
                ("config", key),
                f"config key '{key}' must be {type_name(expected)}, got {value!r} ({type(value).__name__})",
                f"Change it to a value of type {type_name(expected)}.",
            ))
            continue
        problem = check_value(key, coerced, fields[key].metadata)
        if problem is not None:
            problems.add(profile.fail(("config", key), problem, _range_fix(key, fields[key])))
            continue
        kwargs[key] = coerced
    problems.raise_if_any()
    try:
        instance = config_class(**kwargs)
    except ProfileError:
        raise
    except (TypeError, ValueError) as exc:
        field_name, _, rest = str(exc).partition(":")
        if field_name in fields and rest:
            raise profile.fail(("config", field_name), rest.strip().rstrip("."), "Change one of the values named.") from None
        raise profile.fail(("config",), f"invalid config: {exc}", "Fix the value named above.") from None
    return instance


def _range_fix(key: str, config_field: dataclasses.Field[Any]) -> str:
    default = config_field.default
    if default is dataclasses.MISSING and config_field.default_factory is not dataclasses.MISSING:
        default = config_field.default_factory()
    if default is dataclasses.MISSING:
        return "Change it to an allowed value."
    return f"Change it to an allowed value (the default is {_plain(default)!r})."


def check_type(value: Any, expected: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``expected``; returns the (lightly coerced) value.

    ints are accepted for floats, lists for tuples; ``None`` only where the type is Optional.
    """
    if expected is Any:
        return True, value
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, coerced = check_type(value, arg)
            if ok:
                return True, coerced
        return False, value
    if expected is type(None):
        return value is None, value
    if origin is typing.Literal:
        return value in args, value
    if expected is bool:
        return isinstance(value, bool), value
    if expected is int:
        return _is_int(value), value
    if expected is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int | float):
            return True, float(value)
        if isinstance(value, str):
            # YAML 1.1 reads '3e-4' (no dot) as a string; accept numbers written that way.
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if expected is str:
        return isinstance(value, str), value
    if origin in (list, tuple, Sequence) or expected in (list, tuple):
        if not isinstance(value, list | tuple):
            return False, value
        item_types = args
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item_types = (args[0],)
        coerced_items = []
        for i, item in enumerate(value):
            item_type = item_types[0] if len(item_types) == 1 else (item_types[i] if i < len(item_types) else Any)
            ok, c = check_type(item, item_type) if item_types else (True, item)
            if not ok:
                return False, value
            coerced_items.append(c)
        return True, tuple(coerced_items) if origin is tuple or expected is tuple else coerced_items
    if origin in (dict, Mapping) or expected is dict:
        return isinstance(value, dict), value
    if isinstance(expected, type):
        return isinstance(value, expected), value
    return True, value


def type_name(tp: Any) -> str:
    """A readable name for a type annotation (``int``, ``float | None``, ``list[int]``)."""
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{inner}]" if inner else base
    return getattr(tp, "__name__", str(tp))
