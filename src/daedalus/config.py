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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daedalus.errors import ProfileError, did_you_mean

#: Keys a profile may have, with what each one holds (used in messages and docs).
PROFILE_KEYS: dict[str, str] = {
    "agent_id": "registered agent id, pkg.mod:Class or file.py:Class",
    "env_id": "Gymnasium id, registered env id, or pkg.mod:make_env",
    "env_args": "mapping passed to the environment constructor",
    "wrappers": "list of wrapper ids or refs, each optionally with args",
    "num_envs": "number of environment copies (integer >= 1)",
    "seed": "integer seed, or null",
    "vectorization": "auto, sync or async",
    "device": "cpu, cuda, cuda:N or auto",
    "config": "mapping of agent and training parameters",
    "loop": "loop settings for stepwise agents",
    "description": "free text",
}
REQUIRED_KEYS = ("agent_id", "env_id")
VECTORIZATION_MODES = ("auto", "sync", "async")
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
    device: str = "cpu"
    config: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] | None = None
    description: str = ""
    #: Where the profile came from (for messages and for resolving ``file.py:Obj`` refs).
    source: Path | None = None
    #: 1-based line of each key path, e.g. ``("config", "batch_size") -> 12``.
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)

    def where(self, *path: str) -> str:
        """``file:line`` of the deepest known key along ``path`` (for error messages)."""
        src = str(self.source) if self.source else "<profile>"
        for depth in range(len(path), -1, -1):
            line = self.lines.get(path[:depth])
            if line is not None:
                return f"{src}:{line}"
        return src

    def fail(self, path: tuple[str, ...], problem: str, fix: str) -> ProfileError:
        """A ProfileError for ``path`` in this profile: 'file:line: profile 'x': problem. fix'."""
        return ProfileError(f"{self.where(*path)}: profile '{self.profile_id}': {problem}. {fix}")

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
            "vectorization": self.vectorization,
            "device": self.device,
            "config": copy.deepcopy(self.config),
        }
        if self.loop is not None:
            out["loop"] = copy.deepcopy(self.loop)
        if self.description:
            out["description"] = self.description
        return out


# --------------------------------------------------------------------------- loading


def read_yaml(path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse ``path`` with the safe loader; return the data and a key-path -> line map."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(
            f"{path}: no such profile file. Check the path (relative paths start from {Path.cwd()})."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read the profile file ({exc}).") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(
            f"{path}{line}: the file is not valid YAML ({problem}; the mistake is on this line or "
            "the one above). "
            "Check indentation and that every 'key: value' pair has a space after the colon."
        ) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: Any, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = (*path, str(i))
            out[key] = item.start_mark.line + 1
            _collect_lines(item, key, out)


def load_profiles(
    path: str | Path,
    profile_ids: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
) -> list[Profile]:
    """Load profiles from a YAML file, merge defaults and apply ``--set`` overrides.

    ``profile_ids`` selects profiles (all when empty). Only the shape of each profile is
    checked here; :func:`daedalus.api.validate` resolves agents, envs and typed configs.
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
        raise ProfileError(
            f"{path}:{lines.get((DEFAULTS_KEY,), 1)}: 'defaults' must be a mapping of config values, "
            f"not a {type(defaults).__name__}."
        )
    available = [k for k in data if k != DEFAULTS_KEY]
    if not available:
        raise ProfileError(f"{path}: the file has no profiles besides 'defaults'. Add one with agent_id and env_id.")
    selected = list(profile_ids) if profile_ids else available
    for pid in selected:
        if pid not in data or pid == DEFAULTS_KEY:
            raise ProfileError(
                f"{path}: no profile '{pid}'.{did_you_mean(pid, available)} "
                f"Profiles in this file: {', '.join(map(str, available))}."
            )
    parsed_overrides = [parse_override(o) for o in overrides]
    return [
        _build_profile(str(pid), data[pid], defaults, path, lines, parsed_overrides)
        for pid in selected
    ]


def profile_from_dict(
    profile_id: str, raw: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> Profile:
    """Build a profile from Python values (what ``daedalus.train(agent_id=..., ...)`` uses)."""
    return _build_profile(profile_id, dict(raw), dict(defaults or {}), None, {}, [])


def _build_profile(
    profile_id: str,
    raw: Any,
    defaults: dict[str, Any],
    path: Path | None,
    lines: dict[tuple[str, ...], int],
    overrides: list[tuple[list[str], Any]],
) -> Profile:
    src = str(path) if path else "<profile>"
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
        raise probe.fail(
            ("config",),
            f"'config' must be a mapping, got {own_config!r} ({type(own_config).__name__})",
            f"Write e.g. 'config: {_example('config')}'.",
        )
    raw["config"] = _deep_merge(copy.deepcopy(defaults), own_config)
    for keys, value in overrides:
        _apply_override(raw, keys, value, src)

    for key in raw:
        if key not in PROFILE_KEYS:
            hint = did_you_mean(str(key), list(PROFILE_KEYS))
            raise probe.fail(
                (str(key),),
                f"unknown key '{key}'",
                f"{hint.strip() or 'Remove it.'} Valid keys: {', '.join(PROFILE_KEYS)}. "
                "Agent parameters go under 'config'.",
            )
    for key in REQUIRED_KEYS:
        if raw.get(key) in (None, ""):
            raise probe.fail((), f"'{key}' is missing", f"Add '{key}: ...' ({PROFILE_KEYS[key]}).")

    def expect(key: str, ok: bool, expected: str) -> None:
        if not ok:
            value = raw[key]
            raise probe.fail(
                (key,),
                f"'{key}' must be {expected}, got {value!r} ({type(value).__name__})",
                f"Write e.g. '{key}: {_example(key)}'.",
            )

    for key in ("agent_id", "env_id", "vectorization", "device", "description"):
        if key in raw:
            expect(key, isinstance(raw[key], str), "a string")
    if "env_args" in raw:
        raw["env_args"] = raw["env_args"] or {}
        expect("env_args", isinstance(raw["env_args"], dict), "a mapping")
    if "num_envs" in raw:
        expect("num_envs", _is_int(raw["num_envs"]) and raw["num_envs"] >= 1, "an integer >= 1")
    if "seed" in raw:
        expect("seed", raw["seed"] is None or _is_int(raw["seed"]), "an integer or null")
    if "vectorization" in raw and raw["vectorization"] not in VECTORIZATION_MODES:
        raise probe.fail(
            ("vectorization",),
            f"unknown vectorization '{raw['vectorization']}'",
            f"Use one of: {', '.join(VECTORIZATION_MODES)}.{did_you_mean(raw['vectorization'], VECTORIZATION_MODES)}",
        )
    if "loop" in raw and raw["loop"] is not None:
        expect("loop", isinstance(raw["loop"], dict), "a mapping")
    wrappers = _parse_wrappers(raw.get("wrappers") or [], probe)

    return Profile(
        profile_id=profile_id,
        agent_id=raw["agent_id"],
        env_id=raw["env_id"],
        env_args=raw.get("env_args") or {},
        wrappers=wrappers,
        num_envs=raw.get("num_envs", 1),
        seed=raw.get("seed", 0),
        vectorization=raw.get("vectorization", "auto"),
        device=raw.get("device", "cpu"),
        config=raw["config"],
        loop=raw.get("loop"),
        description=raw.get("description", ""),
        source=path,
        lines=own_lines,
    )


def _parse_wrappers(items: Any, probe: Profile) -> list[WrapperRef]:
    fix = "Write each wrapper as '- WrapperId' or '- {id: WrapperId, args: {...}}'."
    if not isinstance(items, list):
        raise probe.fail(("wrappers",), f"'wrappers' must be a list, got {type(items).__name__}", fix)
    out = []
    for i, item in enumerate(items):
        where = ("wrappers", str(i))
        if isinstance(item, str):
            out.append(WrapperRef(item))
        elif isinstance(item, dict) and "id" in item:
            extra = set(item) - {"id", "args"}
            if extra:
                raise probe.fail(where, f"unknown wrapper key(s) {sorted(extra)}", fix)
            args = item.get("args") or {}
            if not isinstance(args, dict):
                raise probe.fail(where, "wrapper 'args' must be a mapping", fix)
            out.append(WrapperRef(str(item["id"]), args))
        elif isinstance(item, dict) and len(item) == 1:
            (ref, args), = item.items()
            if not isinstance(args, dict | None):
                raise probe.fail(where, f"arguments of wrapper '{ref}' must be a mapping", fix)
            out.append(WrapperRef(str(ref), args or {}))
        else:
            raise probe.fail(where, f"cannot read wrapper entry {item!r}", fix)
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
        "vectorization": "auto",
        "device": "cpu",
        "description": "'my experiment'",
    }.get(key, "...")


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
    return key.split("."), value


def _apply_override(raw: dict[str, Any], keys: list[str], value: Any, src: str) -> None:
    # A key that is not a profile key is a config key: `--set total_steps=1000` is short
    # for `--set config.total_steps=1000`.
    if keys[0] not in PROFILE_KEYS:
        keys = ["config", *keys]
    node = raw
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ProfileError(
                f"{src}: --set {'.'.join(keys)}: '{'.'.join(keys[: i + 1])}' is a "
                f"{type(child).__name__}, not a mapping, so it has no sub-keys. Set it as a whole instead."
            )
        node = child
    node[keys[-1]] = value


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

    Unknown keys name the closest field; wrong types name the expected type.
    """
    hints = typing.get_type_hints(config_class)
    names = [f.name for f in dataclasses.fields(config_class)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints or key not in names:
            hint = did_you_mean(key, names)
            raise profile.fail(
                ("config", key),
                f"unknown config key '{key}' for agent '{profile.agent_id}'",
                f"{hint.strip() or 'Remove it.'} Run 'daedalus describe agent {profile.agent_id}' "
                "to see every parameter.",
            )
        expected = hints[key]
        ok, coerced = check_type(value, expected)
        if not ok:
            raise profile.fail(
                ("config", key),
                f"config key '{key}' must be {type_name(expected)}, got {value!r} ({type(value).__name__})",
                f"Change it to a value of type {type_name(expected)}.",
            )
        kwargs[key] = coerced
    try:
        instance = config_class(**kwargs)
    except (TypeError, ValueError) as exc:
        raise profile.fail(("config",), f"invalid config: {exc}", "Fix the value named above.") from None
    return instance


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
