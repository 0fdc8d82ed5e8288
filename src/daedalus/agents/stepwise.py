"""Stepwise agents (the Gym Loop workflow): ``act`` / ``memorize`` / ``update``, run by a loop.

An agent declares its parameters with defaults and is driven one step at a time::

    class MyAgent(StepAgent):
        @staticmethod
        def get_default_parameters():
            return {"learning_rate": 0.1}

        def act(self, state, episode_num):
            return self.action_space.sample()

        def memorize(self, last_ob, action, reward, done, ob):
            ...

        def update(self, episode_num):
            ...

A profile names it as ``agent_id: my_agent.py:MyAgent`` (or ``pkg.mod:MyAgent``); its
``config`` holds the declared parameters (unknown keys are errors, missing ones take their
defaults) and its ``loop`` section the loop's options (:class:`~daedalus.agents.loops.LoopConfig`).
Classes with these methods that do not subclass :class:`StepAgent` (written for Gym Loop's
own ``BaseAgent``) work as well.

How an agent learns about its environment:

* ``self.observation_space`` and ``self.action_space`` are set before the first ``act``
  (the action space is seeded with the profile's seed);
* constructor parameters *named* ``observation_space``, ``action_space`` or ``seed``
  receive those values, for agents that need them while being built (a Q-table's size);
* ``self.training`` is true while the loop trains and false while it evaluates;
* ``self.last_terminated`` / ``self.last_truncated`` are set before every ``memorize``
  call, and ``memorize`` also gets ``terminated=`` / ``truncated=`` keywords when its
  signature accepts them (``done`` is always ``terminated or truncated``).

Agents with ``save() -> bytes`` and ``load(bytes)`` are checkpointed; for the others the
run records ``checkpoint_format: none`` and the loop says so on the console.

Importing this module wires stepwise agents into :mod:`daedalus.registry`.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daedalus import registry as _registry
from daedalus.agents.base import Agent
from daedalus.agents.loops import DefaultLoop, loop_help, loop_parameters
from daedalus.errors import DaedalusError, ProfileError, RegistryError, did_you_mean
from daedalus.specs import AgentSpec
from daedalus.types import ExtraState

if TYPE_CHECKING:
    from daedalus.config import Profile
    from daedalus.types import EnvFactory, TrainContext

__all__ = [
    "StepAgent",
    "create_default",
    "default_profile_yaml",
    "is_stepwise",
    "step_agent_spec",
    "test_agent",
]

_REQUIRED_METHODS = ("get_default_parameters", "act", "memorize", "update")


class StepAgent(Agent):
    """A stepwise agent (Gym Loop's ``BaseAgent``): ``act``, ``memorize``, ``update``.

    ``__init__(**params)`` sets ``self.parameters`` to :meth:`get_default_parameters`
    updated by ``params`` (the profile's ``config``). The loop calls, for every env step,
    ``act(state, episode_num)``, then ``memorize(last_ob, action, reward, done, ob)`` and
    ``update(episode_num)``; ``episode_num`` counts episodes from 0.

    ``memorize`` and ``update`` do nothing by default (an agent that only acts, like a
    random or scripted one, needs neither); ``act`` must be implemented.
    """

    #: Set before the first ``act`` (also given to constructor parameters of that name).
    observation_space: Any = None
    #: Set before the first ``act`` and seeded with the profile's seed.
    action_space: Any = None
    #: True while the loop trains the agent, false while it evaluates (act greedily then).
    training: bool = False
    #: The episode being played (what :meth:`get_action` passes to :meth:`act`).
    episode_num: int = 0
    #: Whether the transition given to the latest ``memorize`` call ended in a terminal state.
    last_terminated: bool = False
    #: Whether that transition was cut by a time limit (bootstrap from ``ob`` then).
    last_truncated: bool = False

    @staticmethod
    def get_default_parameters() -> dict[str, Any]:
        """Every tweakable parameter with its default (written by ``create-default``)."""
        return {}

    def __init__(self, **params: Any) -> None:
        super().__init__(type(self).__name__)
        self.parameters: dict[str, Any] = self.get_default_parameters()
        self.parameters.update(params)

    def act(self, state: Any, episode_num: int) -> Any:
        """The action for ``state``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement act()")

    def memorize(self, last_ob: Any, action: Any, reward: float, done: bool, ob: Any) -> None:
        """Store one transition (called after every env step, training episodes only)."""

    def update(self, episode_num: int) -> None:
        """Learn (called right after :meth:`memorize`, except in random warm-up episodes)."""

    def get_action(self, obs: Any, extra_state: ExtraState = None) -> tuple[Any, ExtraState]:
        """The :class:`~daedalus.agents.base.Agent` interface: ``act(obs, episode_num)``."""
        return self.act(obs, self.episode_num), extra_state

    def is_checkpointable(self) -> bool:
        """Whether the agent implements ``save`` (so checkpoints hold its state)."""
        return type(self).save is not Agent.save


#: Attributes the loop sets that a wrapped Gym Loop agent should see on itself.
_MIRRORED = frozenset(
    {
        "observation_space",
        "action_space",
        "training",
        "episode_num",
        "last_terminated",
        "last_truncated",
    }
)


class GymLoopAgent(StepAgent):
    """Runs an object with Gym Loop's methods that does not subclass :class:`StepAgent`.

    ``inner`` is the user's object: calls are forwarded to it, and the attributes the loop
    sets (spaces, ``training``, ``last_terminated``, ...) are set on it too.
    """

    inner: Any

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "inner", inner)
        self.name = type(inner).__name__
        self.parameters = getattr(inner, "parameters", {})
        for attr in ("observation_space", "action_space"):
            value = getattr(inner, attr, None)
            if value is not None:
                object.__setattr__(self, attr, value)
        self._with_flags: bool | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _MIRRORED:
            # A read-only property or __slots__ on the user's object: it opted out.
            with contextlib.suppress(AttributeError):
                setattr(self.inner, name, value)

    def act(self, state: Any, episode_num: int) -> Any:
        """``inner.act``."""
        return self.inner.act(state, episode_num)

    def memorize(
        self,
        last_ob: Any,
        action: Any,
        reward: float,
        done: bool,
        ob: Any,
        terminated: bool | None = None,
        truncated: bool | None = None,
    ) -> None:
        """``inner.memorize``, with the flags when it accepts them."""
        from daedalus.agents.loops import accepts_flags

        if self._with_flags is None:
            self._with_flags = accepts_flags(self.inner.memorize)
        if self._with_flags:
            self.inner.memorize(
                last_ob, action, reward, done, ob, terminated=terminated, truncated=truncated
            )
        else:
            self.inner.memorize(last_ob, action, reward, done, ob)

    def update(self, episode_num: int) -> None:
        """``inner.update``."""
        self.inner.update(episode_num)

    def metrics(self, episode_num: int) -> dict[str, float] | None:
        """``inner.metrics`` when it has one (Gym Loop's optional hook)."""
        metrics = getattr(self.inner, "metrics", None)
        return metrics(episode_num) if callable(metrics) else None

    def save(self) -> bytes:
        """``inner.save()`` when it has one."""
        save = getattr(self.inner, "save", None)
        if not callable(save):
            raise NotImplementedError(f"{self.name} does not implement save()")
        return bytes(save())

    def load(self, agent_data: bytes) -> None:
        """``inner.load(agent_data)``."""
        load = getattr(self.inner, "load", None)
        if not callable(load):
            raise NotImplementedError(f"{self.name} does not implement load()")
        load(agent_data)

    def is_checkpointable(self) -> bool:
        """Whether the wrapped object has ``save``."""
        return callable(getattr(self.inner, "save", None))


# --------------------------------------------------------------------------- registry adapter


def looks_stepwise(obj: Any) -> bool:
    """Whether ``obj`` is a StepAgent subclass or a class with Gym Loop's four methods."""
    if not isinstance(obj, type):
        return False
    if issubclass(obj, StepAgent):
        return True
    return all(callable(getattr(obj, name, None)) for name in _REQUIRED_METHODS)


def declared_parameters(cls: type, ref: str) -> dict[str, Any]:
    """``cls.get_default_parameters()``, checked to be a dict (a deep copy)."""
    try:
        defaults = cls.get_default_parameters()  # type: ignore[attr-defined]
    except NotImplementedError:
        raise RegistryError(
            f"reference '{ref}': {cls.__name__}.get_default_parameters() is not implemented. "
            "Point the reference at your agent class (the subclass), or implement it to return "
            "a dict of parameters with their defaults."
        ) from None
    except Exception as exc:
        raise RegistryError(
            f"reference '{ref}': {cls.__name__}.get_default_parameters() raised "
            f"{type(exc).__name__}: {exc}. Fix it so that it returns a dict."
        ) from None
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        raise RegistryError(
            f"reference '{ref}': {cls.__name__}.get_default_parameters() returned "
            f"{type(defaults).__name__}; it must return a dict of parameter names to defaults."
        )
    return copy.deepcopy(defaults)


def step_agent_spec(obj: Any, ref: str) -> AgentSpec | None:
    """The AgentSpec of a stepwise agent class (``None`` for anything else).

    Called by :func:`daedalus.registry.agent_spec_from_object` for references.
    """
    if not looks_stepwise(obj):
        return None
    cls: type = obj
    defaults = declared_parameters(cls, ref)
    doc = (cls.__doc__ or "").strip()
    description = doc.splitlines()[0].strip() if doc and cls is not StepAgent else ""

    def agent_factory(
        observation_space: Any, action_space: Any, config: Any, seed: int | None
    ) -> Any:
        params = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        return build_step_agent(cls, params, observation_space, action_space, seed)

    return AgentSpec(
        agent_id=ref,
        agent_factory=agent_factory,
        training_wrapper=train_step_agent,
        description=description or f"stepwise agent {cls.__name__}",
        default_config=defaults,
        check_profile=check_loop_section,
    )




def is_stepwise(spec: AgentSpec) -> bool:
    """Whether ``spec`` runs a stepwise agent in a loop."""
    return spec.training_wrapper is train_step_agent


def build_step_agent(
    cls: type,
    params: dict[str, Any],
    observation_space: Any,
    action_space: Any,
    seed: int | None,
) -> StepAgent:
    """Instantiate a stepwise agent class with its parameters and tell it about its env.

    Constructor parameters named ``observation_space``, ``action_space`` or ``seed`` are
    passed (unless the profile's config sets them); the spaces are also set as attributes.
    """
    if seed is not None and action_space is not None and hasattr(action_space, "seed"):
        action_space.seed(seed)
    provided = {"observation_space": observation_space, "action_space": action_space, "seed": seed}
    kwargs = dict(params)
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        for name, param in signature.parameters.items():
            named = param.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            )
            if named and name in provided and name not in kwargs:
                kwargs[name] = provided[name]
    instance = cls(**kwargs)
    agent: StepAgent = instance if isinstance(instance, StepAgent) else GymLoopAgent(instance)
    for name in ("observation_space", "action_space"):
        if getattr(agent, name, None) is None:
            setattr(agent, name, provided[name])
    agent.training = False
    agent.episode_num = 0
    return agent


# --------------------------------------------------------------------------- the loop section


def parse_loop_section(
    section: dict[str, Any] | None,
    fail: Callable[[tuple[str, ...], str, str], ProfileError],
    base_dir: Path | None = None,
) -> tuple[type, dict[str, Any], dict[str, Any]]:
    """Read a profile's ``loop:`` section: ``(loop class, parameters, normalized section)``.

    Accepted forms: flat options of the default loop (``{max_episodes: 10}``), Gym Loop's
    ``{parameters: {...}}``, and ``{class: pkg.mod:MyLoop, parameters: {...}}``. Unknown keys
    and wrong types are reported through ``fail(path, problem, fix)``. The normalized section
    holds every parameter with its default (flat for the default loop).
    """
    section = dict(section or {})
    nested = "class" in section or "parameters" in section
    if nested:
        params_path: tuple[str, ...] = ("loop", "parameters")
        loop_cls: type = DefaultLoop
        class_ref = section.get("class")
        if class_ref is not None:
            loop_cls, class_ref = _resolve_loop_class(class_ref, fail, base_dir)
        raw = section.get("parameters") or {}
        if not isinstance(raw, dict):
            raise fail(
                ("loop", "parameters"),
                f"'loop.parameters' must be a mapping, got {type(raw).__name__}",
                "Write e.g. 'parameters: {max_episodes: 100}'.",
            )
        declared = loop_parameters(loop_cls)
        for key in section:
            if key not in ("class", "parameters"):
                hint = did_you_mean(str(key), ["class", "parameters"])
                where = " under 'parameters'" if key in declared else ""
                raise fail(
                    ("loop", str(key)),
                    f"unknown loop key '{key}'",
                    f"{hint.strip() or f'Move it{where} or remove it.'} With 'class' or "
                    "'parameters', the loop section holds only those two keys; options go under "
                    "'parameters'.",
                )
    else:
        params_path = ("loop",)
        loop_cls, class_ref, raw = DefaultLoop, None, section
        declared = loop_parameters(loop_cls)
    name = loop_cls.__name__
    for key in raw:
        if key not in declared:
            hint = did_you_mean(str(key), list(declared))
            raise fail(
                (*params_path, str(key)),
                f"unknown loop key '{key}' for {name}",
                f"{hint.strip() or 'Remove it.'} Valid keys: {', '.join(declared) or 'none'}.",
            )
    params = {**declared, **raw}
    config_class = getattr(loop_cls, "config_class", None)
    if config_class is not None:
        params = _typed_loop_parameters(config_class, params, params_path, fail)
    normalized: dict[str, Any] = (
        dict(params) if class_ref is None else {"class": class_ref, "parameters": dict(params)}
    )
    return loop_cls, params, normalized


#: Names of the built-in loop a profile may give as ``loop.class``.
_BUILTIN_LOOP_NAMES = ("DefaultLoop", "daedalus:DefaultLoop", "daedalus.agents.loops:DefaultLoop")


def _resolve_loop_class(
    class_ref: Any, fail: Callable[[tuple[str, ...], str, str], ProfileError], base_dir: Path | None
) -> tuple[type, str]:
    fix = "Write 'class: pkg.mod:MyLoop' or 'class: path/to/file.py:MyLoop' (a BaseLoop subclass)."
    if class_ref in _BUILTIN_LOOP_NAMES:
        # Built in: no import, so it also works when loading a run folder without --trust-code.
        return DefaultLoop, class_ref
    if not isinstance(class_ref, str) or not _registry.is_ref(class_ref):
        raise fail(("loop", "class"), f"'loop.class' must be a reference, got {class_ref!r}", fix)
    try:
        obj = _registry.resolve_ref(class_ref, base_dir)
    except DaedalusError as exc:
        raise fail(("loop", "class"), str(exc).rstrip("."), fix) from None
    if not (isinstance(obj, type) and callable(getattr(obj, "train", None))):
        raise fail(
            ("loop", "class"),
            f"'{class_ref}' is {obj!r}, not a loop class",
            "Point it at a subclass of daedalus.BaseLoop (one with a train() method).",
        )
    file_part, _, attr = class_ref.rpartition(":")
    if file_part.endswith(".py") and not Path(file_part).expanduser().is_absolute():
        for candidate in ((base_dir or Path.cwd()) / file_part, Path.cwd() / file_part):
            if candidate.is_file():
                class_ref = f"{candidate.resolve()}:{attr}"
                break
    return obj, class_ref


def _typed_loop_parameters(
    config_class: type,
    params: dict[str, Any],
    params_path: tuple[str, ...],
    fail: Callable[[tuple[str, ...], str, str], ProfileError],
) -> dict[str, Any]:
    import dataclasses
    import typing

    from daedalus.config import check_type, type_name
    from daedalus.errors import Problems
    from daedalus.params import check_value

    hints = typing.get_type_hints(config_class)
    metadata = {f.name: f.metadata for f in dataclasses.fields(config_class)} if dataclasses.is_dataclass(config_class) else {}
    problems = Problems()
    checked = {}
    for key, value in params.items():
        expected = hints.get(key, Any)
        ok, coerced = check_type(value, expected)
        if not ok:
            problems.add(fail(
                (*params_path, key),
                f"loop key '{key}' must be {type_name(expected)}, "
                f"got {value!r} ({type(value).__name__})",
                f"Change it to a value of type {type_name(expected)}.",
            ))
            continue
        problem = check_value(key, coerced, metadata.get(key, {}))
        if problem is not None:
            problems.add(fail((*params_path, key), problem, "Change it to an allowed value."))
            continue
        checked[key] = coerced
    problems.raise_if_any()
    try:
        config_class(**checked)
    except (TypeError, ValueError) as exc:
        field_name, _, rest = str(exc).partition(":")
        if field_name in hints and rest:
            raise fail((*params_path, field_name), rest.strip().rstrip("."), "Change one of the values named.") from None
        raise fail(
            params_path, f"invalid loop options: {exc}", "Fix the value named above."
        ) from None
    return checked


def check_loop_section(profile: Profile) -> None:
    """Validate a stepwise profile before training: its ``loop:`` section and ``num_envs``.

    The loop section is normalized in place (every option with its default, file
    references made absolute), so the run's resolved ``profile.yaml`` holds all of them.
    """
    if profile.num_envs != 1:
        raise profile.fail(
            ("num_envs",),
            "stepwise agents run in a loop over one environment, "
            f"but num_envs is {profile.num_envs}",
            "Remove 'num_envs' (or set it to 1).",
        )
    if profile.backend != "local":
        raise profile.fail(
            ("rollout", "backend"),
            f"stepwise agents act, memorize and update between every two steps of one env in this "
            f"process, so rollout backend '{profile.backend}' cannot apply",
            "Remove 'rollout' (or set 'backend: local').",
        )
    _, _, normalized = parse_loop_section(profile.loop, profile.fail, profile.base_dir)
    profile.loop = normalized


# --------------------------------------------------------------------------- training


def train_step_agent(
    env_factory: EnvFactory,
    agent: StepAgent,
    config: Any,
    artifacts: dict[str, Any],
    save_callback: Any,
    context: TrainContext,
) -> None:
    """Train a stepwise agent in the profile's loop (the default loop unless ``loop.class``)."""
    loop_cls, params, _ = parse_loop_section(context.loop, _runtime_fail(context))
    if not agent.is_checkpointable():
        note = (
            f"{agent.name} does not implement save()/load(): checkpoints of this run hold no "
            "agent state (checkpoint_format 'none'). Implement save() -> bytes and load(bytes) "
            "to resume or evaluate the run later."
        )
        artifacts.setdefault("notes", []).append(note)
        print(f"note: {note}", flush=True)
    loop = loop_cls(agent, env_factory, context, artifacts, save_callback, **params)
    loop.train()


def _runtime_fail(context: TrainContext) -> Callable[[tuple[str, ...], str, str], ProfileError]:
    def fail(path: tuple[str, ...], problem: str, fix: str) -> ProfileError:
        key = ".".join(path)
        return ProfileError(f"profile '{context.profile_id}': {key}: {problem}. {fix}")

    return fail


# --------------------------------------------------------------------------- create-default


def create_default(
    agent_ref: str, env_id: str | None = None, loop_ref: str | None = None
) -> dict[str, Any]:
    """A profile file ``{profile_id: profile}`` with every declared parameter at its default.

    Args:
        agent_ref: A registered agent id (``ppo``), ``pkg.mod:Class`` or ``path/file.py:Class``.
        env_id: The environment; default ``Pendulum-v1`` for stepwise agents (Gym Loop's
            default) and ``CartPole-v1`` for the others.
        loop_ref: A loop class reference (stepwise agents only); default: the default loop.

    Returns:
        The YAML-ready mapping. Stepwise agents get ``config`` from
        ``get_default_parameters()`` and ``loop`` with every loop option; typed agents
        (``ppo``) get every field of their config class.
    """
    from daedalus.config import config_defaults

    spec = _registry.get_agent(agent_ref, Path.cwd())
    stepwise = is_stepwise(spec)
    if loop_ref is not None and not stepwise:
        raise DaedalusError(
            f"--loop applies to stepwise agents (act/memorize/update) only; '{agent_ref}' trains "
            "with its own training wrapper. Drop --loop."
        )
    if spec.config_class is not None:
        config = config_defaults(spec.config_class)
    elif spec.default_config is not None:
        config = copy.deepcopy(spec.default_config)
    else:
        config = {}
    env = env_id or ("Pendulum-v1" if stepwise else "CartPole-v1")
    profile: dict[str, Any] = {"agent_id": agent_ref, "env_id": env, "env_args": {}, "seed": 0}
    if not stepwise:
        profile["num_envs"] = 1
    profile["config"] = config
    if stepwise:
        section = {"class": loop_ref} if loop_ref is not None else {}
        fail = _plain_fail(f"--loop '{loop_ref}'")
        _, _, normalized = parse_loop_section(section, fail, Path.cwd())
        if loop_ref is not None:
            normalized["class"] = loop_ref  # keep the reference as the user wrote it
        profile["loop"] = normalized
    return {_profile_id(agent_ref, env): profile}


def default_profile_yaml(
    agent_ref: str, env_id: str | None = None, loop_ref: str | None = None
) -> str:
    """:func:`create_default` as YAML text, with each option's help as a comment."""
    import yaml

    from daedalus.config import describe_config

    data = create_default(agent_ref, env_id, loop_ref)
    ((profile_id, profile),) = data.items()
    helps: dict[str, dict[str, str]] = {"config": {}, "loop": {}}
    spec = _registry.get_agent(agent_ref, Path.cwd())
    if spec.config_class is not None:
        helps["config"] = {f.name: f.help for f in describe_config(spec.config_class)}
    if "loop" in profile:
        loop_cls: type = DefaultLoop
        if loop_ref is not None:
            loop_cls, _ = _resolve_loop_class(
                loop_ref, _plain_fail(f"--loop '{loop_ref}'"), Path.cwd()
            )
        helps["loop"] = loop_help(loop_cls)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    header = (
        f"# Written by: daedalus create-default --agent {agent_ref}\n"
        "# Every declared parameter with its default.\n"
        f"# Train with: daedalus train FILE {profile_id}\n"
    )
    return header + _with_comments(text, helps)


def _with_comments(text: str, helps: dict[str, dict[str, str]]) -> str:
    """Append ``# help`` to scalar lines of the ``config`` and ``loop`` sections."""
    out, section = [], None
    for line in text.splitlines():
        match = re.match(r"^  (\w+):", line)
        if match:
            section = match.group(1)
        key_match = re.match(r"^ {4}(\w+): \S", line) or re.match(r"^ {6}(\w+): \S", line)
        note = helps.get(section or "", {}).get(key_match.group(1), "") if key_match else ""
        out.append(f"{line}  # {note}" if note else line)
    return "\n".join(out) + "\n"


def _profile_id(agent_ref: str, env_id: str) -> str:
    agent_name = agent_ref.rpartition(":")[2] or agent_ref
    env_name = env_id.rpartition(":")[2].split("-v")[0]
    words = re.sub(
        r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", f"{agent_name}_{env_name}"
    )
    return re.sub(r"[^0-9a-zA-Z]+", "_", words).strip("_").lower()


def _plain_fail(where: str) -> Callable[[tuple[str, ...], str, str], ProfileError]:
    def fail(path: tuple[str, ...], problem: str, fix: str) -> ProfileError:
        return ProfileError(f"{where}: {problem}. {fix}")

    return fail


def write_default_profile(
    agent_ref: str,
    env_id: str | None = None,
    loop_ref: str | None = None,
    output: str | Path | None = None,
    force: bool = False,
) -> str:
    """``create-default``: the default profile as YAML, written to ``output`` when given.

    An existing ``output`` is kept unless ``force`` (it may hold edits).
    """
    text = default_profile_yaml(agent_ref, env_id, loop_ref)
    if output is not None:
        target = Path(output)
        if target.exists() and not force:
            raise DaedalusError(
                f"{target} exists; pass --force to overwrite it, or choose another -o."
            )
        from daedalus.runs.io import atomic_write_text

        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
    return text


# --------------------------------------------------------------------------- evaluation


class NoProgress:
    """A progress sink that shows nothing (evaluation runs)."""

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Ignore the update."""


# --------------------------------------------------------------------------- ReAllY's test


def test_agent(
    agent: Any,
    env_factory: EnvFactory,
    max_steps: int,
    test_episodes: int = 100,
    evaluation_measure: str = "time",
    *,
    seed: int | None = 0,
    render: bool = False,
    do_print: bool = False,
) -> float | tuple[float, float]:
    """ReAllY's ``manager.test``: mean episode length and/or return of ``agent``.

    Args:
        agent: A :class:`~daedalus.agents.base.Agent` (``get_action``), a stepwise agent
            (``act``; its ``training`` flag is false meanwhile) or a batched ``predict`` agent.
        env_factory: ``env_factory(seed)`` returns one env.
        max_steps: Cut episodes after this many steps.
        test_episodes: Episodes to run.
        evaluation_measure: ``"time"`` (mean length), ``"reward"`` (mean return) or
            ``"time_and_reward"`` (both, in that order).
        seed: Episode ``i`` is reset with ``seed + i``; ``None``: unseeded.
        render: Call ``env.render()`` after every step.
        do_print: Print the measure.

    Returns:
        The mean length, the mean return, or ``(mean length, mean return)``.
    """
    from daedalus.evaluation import evaluate

    measures = ("time", "reward", "time_and_reward")
    if evaluation_measure not in measures:
        raise DaedalusError(
            f"unknown evaluation_measure '{evaluation_measure}'."
            f"{did_you_mean(evaluation_measure, measures)} Use one of: {', '.join(measures)}."
        )
    policy = agent
    if not callable(getattr(agent, "get_action", None)) and callable(getattr(agent, "act", None)):
        policy = GymLoopAgent(agent)
    was_training = getattr(policy, "training", None)
    if was_training is not None:
        policy.training = False
    try:
        result = evaluate(
            policy,
            env_factory,
            n_episodes=test_episodes,
            seed=seed,
            max_steps=max_steps,
            render=render,
        )
    finally:
        if was_training is not None:
            policy.training = was_training
    value: float | tuple[float, float]
    if evaluation_measure == "time":
        value = result.mean_length
    elif evaluation_measure == "reward":
        value = result.mean_return
    else:
        value = (result.mean_length, result.mean_return)
    if do_print:
        print(f"test over {test_episodes} episodes, {evaluation_measure}: {value}", flush=True)
    return value


test_agent.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
