"""Resolve a profile: agent, environment and typed config, all checked before anything trains.

:func:`load` and :func:`validate` turn profiles into :class:`ResolvedProfile` s (every
problem of every profile reported at once); :func:`make_agent` calls an agent factory
with the arguments its parameter names ask for; :func:`code_references` lists the code a
profile would import (for ``--trust-code``); :func:`load_run` rebuilds a saved run's agent within
the trust rules (here, at the bottom of the api, so that a training session can hand it to
algorithms that read another run: DAgger's expert, through ``TrainContext.load_run``).
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from daedalus.config import (
    Profile,
    ProfileConfig,
    build_config,
    config_defaults,
    load_profiles,
    read_profiles,
    resolve_device,
)
from daedalus.errors import DaedalusError, Problems, ProfileError, RegistryError, RunError
from daedalus.registry import get_agent, is_ref
from daedalus.runs.store import load_checkpoint_into, resolve_run
from daedalus.specs import AgentSpec

P = ParamSpec("P")
R = TypeVar("R")

# --------------------------------------------------------------------------- validation


@dataclass
class ResolvedProfile:
    """A profile whose agent, env and config have all been resolved and checked."""

    profile: Profile
    spec: AgentSpec
    config: Any  # the typed config instance, or a ProfileConfig
    make_env: Callable[[int | None], Any]
    observation_space: Any
    action_space: Any
    #: Dict/Tuple observations are flattened for the agent (AgentSpec.flat_observations).
    flatten_observations: bool = False
    #: One factory per entry of the profile's ``callbacks``: a fresh callback object per run.
    callback_factories: list[Callable[[], Any]] = field(default_factory=list)
    #: Multi-agent (PettingZoo) profiles: policy name -> the env's agents it acts for.
    groups: dict[str, list[str]] | None = None
    #: Policy name -> (one agent's observation space, action space).
    group_spaces: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: Policy name -> its typed config (the profile's ``config`` with the policy's own over it).
    policy_configs: dict[str, Any] = field(default_factory=dict)
    #: Policies with a centralized critic -> the length of the agent's own observation (what the actor reads).
    actor_inputs: dict[str, int] = field(default_factory=dict)
    #: Policies whose critic is ``centralized`` or reads the env's ``state`` (the config's ``critic``).
    critics: dict[str, str] = field(default_factory=dict)
    #: For the agent factory of one policy (set by make_agent): see ``actor_inputs``.
    factory_actor_inputs: int | None = None

    def make_callbacks(self) -> list[Any]:
        """Fresh callback objects for one training session."""
        return [factory() for factory in self.callback_factories]

    def resolve(self, ref: str) -> Any:
        """Import a reference named by this profile (relative to its file, under the current trust rules)."""
        from daedalus.registry import resolve_ref

        return resolve_ref(ref, self.profile.base_dir)

    def env_factory(self, **extra_env_args: Any) -> Callable[..., Any]:
        """``make_env(seed)`` with extra constructor arguments (e.g. ``render_mode``)."""
        from daedalus.envs.make import env_factory_for

        return env_factory_for(self.profile, flatten_observations=self.flatten_observations, **extra_env_args)

    def resolved_dict(self) -> dict[str, Any]:
        """The profile with every default filled in and file references made absolute."""
        data = self.profile.to_dict()
        if self.spec.config_class is not None:
            data["config"] = {**config_defaults(self.spec.config_class), **_plain_config(self.config)}
        elif self.spec.default_config is not None:
            data["config"] = _plain_config(self.config)
        base = self.profile.base_dir
        data["agent_id"] = _absolute_ref(data["agent_id"], base)
        data["env_id"] = _absolute_ref(data["env_id"], base)
        for wrapper in data["wrappers"]:
            wrapper["id"] = _absolute_ref(wrapper["id"], base)
        for callback in data.get("callbacks", []):
            callback["ref"] = _absolute_ref(callback["ref"], base)
        if self.spec.config_class is not None:
            import dataclasses

            for config_field in dataclasses.fields(self.spec.config_class):
                value = data["config"].get(config_field.name)
                if config_field.metadata.get("code") and isinstance(value, str):
                    data["config"][config_field.name] = _absolute_ref(value, base)
        return data


def _plain_config(config: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    if isinstance(config, ProfileConfig):
        return config.to_dict()
    return dict(config)


def _absolute_ref(ref: str, base: Path) -> str:
    if is_ref(ref):
        file_part, _, attr = ref.rpartition(":")
        if file_part.endswith(".py") and not Path(file_part).expanduser().is_absolute():
            for candidate in (base / file_part, Path.cwd() / file_part):
                if candidate.is_file():
                    return f"{candidate.resolve()}:{attr}"
    return ref


def validate(profile: Profile) -> ResolvedProfile:
    """Resolve the agent, the environment (one copy is built and closed) and the typed config.

    Every problem is collected and reported at once in a ProfileError naming the profile
    file and line, so that a batch fails before any training starts. A reference that the
    current trust rules refuse (see :func:`load_run`) raises a TrustError instead.
    """
    problems = Problems()
    spec: AgentSpec | None = None
    config: Any = None
    try:
        spec = get_agent(profile.agent_id, profile.base_dir)
    except RegistryError as exc:
        problems.add(profile.fail(("agent_id",), str(exc).rstrip("."), "Fix 'agent_id'."))
    if spec is not None:
        if spec.training_wrapper is None:
            problems.add(profile.fail(
                ("agent_id",),
                f"agent '{profile.agent_id}' was registered without a training wrapper, so it cannot be trained",
                "Pass training_wrapper= to register_agent().",
            ))
        with problems.collect():
            if spec.config_class is not None:
                config = build_config(spec.config_class, profile.config, profile)
            elif spec.default_config is not None:
                config = ProfileConfig(_with_declared_defaults(spec.default_config, profile))
            else:
                config = ProfileConfig(profile.config)
        if spec.check_profile is not None:
            with problems.collect():
                spec.check_profile(profile)
    from daedalus.envs.make import env_factory_for

    make_env: Any = None
    observation_space = action_space = None
    try:
        make_env = env_factory_for(profile)
        env = make_env(None)
        try:
            from daedalus.envs.pettingzoo import is_pettingzoo

            if not is_pettingzoo(env):  # multi-agent envs are resolved below, group by group
                missing = [name for name in ("reset", "step", "observation_space", "action_space") if not hasattr(env, name)]
                if missing:
                    kind = f"{type(env).__module__}.{type(env).__qualname__}"
                    raise RegistryError(
                        f"'{profile.env_id}' built a {kind} (no {', '.join(missing)}), which is neither a Gymnasium env "
                        "nor a PettingZoo env (Parallel or AEC). Return a gymnasium.Env or a PettingZoo env from the factory"
                    )
                observation_space, action_space = env.observation_space, env.action_space
        finally:
            close = getattr(env, "close", None)
            if callable(close):
                close()
    except RegistryError as exc:
        problems.add(profile.fail(("env_id",), str(exc).rstrip("."), "Fix 'env_id', 'env_args' or 'wrappers'."))
    except DaedalusError:
        raise
    except Exception as exc:
        problems.add(profile.fail(
            ("env_id",),
            f"creating environment '{profile.env_id}' failed: {type(exc).__name__}: {exc}",
            "Check env_id and env_args (and that the env's optional packages are installed).",
        ))
    multi: _MultiAgent | None = None
    if make_env is not None and observation_space is None and spec is not None:
        with problems.collect():
            multi = _resolve_multi_agent(profile, spec, make_env)
        if multi is not None:
            observation_space, action_space = next(iter(multi.spaces.values()))
    elif profile.policies or profile.policy_mapping:
        # A Gymnasium env with policies comes wrapped as a one-agent PettingZoo env (env_factory_for);
        # what is left is an array multi-agent env, whose agents have no names to map.
        problems.add(profile.fail(
            ("policies" if profile.policies else "policy_mapping",),
            f"'{profile.env_id}' is an array multi-agent environment (ArrayMultiAgentEnv), whose agents have no names; "
            "policies and policy_mapping are for PettingZoo and Gymnasium envs",
            "Remove them (its agents share one policy), or build a PettingZoo env in make_env.",
        ))
    if multi is None and observation_space is not None and getattr(config, "critic", None) in ("centralized", "state"):
        problems.add(profile.fail(
            ("config", "critic"), f"a centralized critic needs a multi-agent environment, and '{profile.env_id}' has one agent",
            f"Remove 'critic: {config.critic}' (or train on a PettingZoo env).",
        ))
    flatten = False
    if spec is not None and observation_space is not None and multi is None:
        with problems.collect():
            flatten = check_spaces(profile, spec, observation_space, action_space)
        if flatten:
            make_env = env_factory_for(profile, flatten_observations=True)
            observation_space = _flat_space(observation_space)
        if config is not None:
            with problems.collect():
                check_memory(profile, config, observation_space, action_space)
    callback_factories: list[Callable[[], Any]] = []
    with problems.collect():
        callback_factories = resolve_callbacks(profile)
    if config is not None and spec is not None and spec.config_class is not None:
        with problems.collect():
            check_code_fields(profile, config)
    problems.raise_if_any()
    assert spec is not None
    resolved = ResolvedProfile(profile, spec, config, make_env, observation_space, action_space, flatten, callback_factories)
    if multi is not None:
        resolved.groups, resolved.group_spaces, resolved.policy_configs = multi.groups, multi.spaces, multi.configs
        resolved.actor_inputs, resolved.critics = multi.actor_inputs, multi.critics
    return resolved


#: Agents that train on multi-agent envs: ppo and a2c (several policies), dqn, sac and td3 (one shared network).
MULTI_AGENT_ALGOS = ("ppo", "a2c", "dqn", "sac", "td3")


@dataclass
class _MultiAgent:
    groups: dict[str, list[str]]
    spaces: dict[str, tuple[Any, Any]]
    configs: dict[str, Any]
    actor_inputs: dict[str, int]
    critics: dict[str, str]


def _resolve_multi_agent(profile: Profile, spec: AgentSpec, make_env: Callable[[int | None], Any]) -> _MultiAgent | None:
    """Groups, spaces and per-policy configs of a PettingZoo profile (None: not a PettingZoo env)."""
    from daedalus.config import SHARED_POLICY, map_agents
    from daedalus.envs.pettingzoo import NamedMultiAgentVecEnv, is_pettingzoo

    env = make_env(None)
    try:
        if not is_pettingzoo(env):
            return None
        agents = list(env.possible_agents)
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()
    problems = Problems()
    if spec.agent_id not in MULTI_AGENT_ALGOS:
        raise profile.fail(
            ("agent_id",),
            f"agent '{profile.agent_id}' does not train on multi-agent environments ('{profile.env_id}' has agents "
            f"{', '.join(agents)})", f"Use one of: {', '.join(MULTI_AGENT_ALGOS)}.",
        )
    names = list(profile.policies) or [SHARED_POLICY]
    if spec.agent_id in ("dqn", "sac", "td3"):
        from daedalus.envs.pettingzoo import is_aec

        probe_env = make_env(None)
        try:
            turn_based = is_aec(probe_env)
        finally:
            probe_env.close()
        if turn_based or len(names) > 1 or any(p.random for p in profile.policies.values()):
            raise profile.fail(
                ("agent_id",),
                f"{spec.agent_id} trains one network shared by every agent (independent learners) on simultaneous (Parallel) envs",
                f"Use one policy and a Parallel env with {spec.agent_id}, or ppo / a2c for several policies and turn-based games.",
            )
    mapping = dict(profile.policy_mapping) or {"": names[0]}
    try:
        groups = map_agents(agents, mapping)
    except ProfileError as exc:
        raise profile.fail(("policy_mapping",) if profile.policy_mapping else ("policies",), str(exc).rstrip("."), "") from None
    unused = [name for name in names if name not in groups]
    if unused:
        problems.add(profile.fail(
            ("policy_mapping",), f"no agent is mapped to polic{'ies' if len(unused) > 1 else 'y'} {', '.join(unused)} (agents: {', '.join(agents)})",
            "Map a prefix to it, or remove it from 'policies'.",
        ))
    configs: dict[str, Any] = {}
    for name in groups:
        own = profile.policies[name].config if name in profile.policies else {}
        with problems.collect():
            if spec.config_class is not None:
                configs[name] = build_config(spec.config_class, {**profile.config, **own}, profile)
    problems.raise_if_any()
    random = {name for name, entry in profile.policies.items() if entry.random}
    critics = {
        name: config.critic for name, config in configs.items()
        if getattr(config, "critic", None) in ("centralized", "state") and name not in random
    }
    try:
        from daedalus.rollout.multiagent import critic_groups

        one_hot = [name for name, entry in profile.policies.items() if entry.agent_id_input]
        probe = NamedMultiAgentVecEnv(make_env, 1, groups, one_hot_agent_id=one_hot, centralized_critic=critic_groups(critics)[0], state_critic=critic_groups(critics)[1])
    except DaedalusError as exc:
        raise profile.fail(("policy_mapping",) if profile.policy_mapping else ("env_id",), str(exc).rstrip("."), "") from None
    try:
        spaces = {name: (probe.observation_spaces[name], probe.action_spaces[name]) for name in groups}
        actor_inputs = dict(probe.actor_inputs)
    finally:
        probe.close()
    for name in groups:
        with problems.collect():
            check_spaces(profile, spec, *spaces[name])
    problems.raise_if_any()
    return _MultiAgent(groups, spaces, configs, actor_inputs, critics)


def resolve_callbacks(profile: Profile) -> list[Callable[[], Any]]:
    """Import every class the profile's ``callbacks`` name; each becomes a factory of fresh objects."""
    import functools

    from daedalus.hooks import HOOK_NAMES
    from daedalus.registry import resolve_ref

    problems = Problems()
    factories: list[Callable[[], Any]] = []
    fix = f"Point it at a class with one or more of {', '.join(HOOK_NAMES)} (see docs/hooks.md)."
    for i, entry in enumerate(profile.callbacks):
        where = ("callbacks", str(i))
        try:
            obj = resolve_ref(entry.ref, profile.base_dir) if is_ref(entry.ref) else None
        except RegistryError as exc:
            problems.add(profile.fail(where, str(exc).rstrip("."), fix))
            continue
        if obj is None:
            problems.add(profile.fail(where, f"callback '{entry.ref}' is not a reference", "Write 'pkg.mod:Class' or 'file.py:Class'."))
        elif not inspect.isclass(obj) or not any(hasattr(obj, name) for name in HOOK_NAMES):
            problems.add(profile.fail(where, f"callback '{entry.ref}' is not a hook class", fix))
        else:
            try:
                inspect.signature(obj).bind(**entry.args)
            except TypeError as exc:
                problems.add(profile.fail(where, f"callback '{entry.ref}' does not take args {entry.args}: {exc}", "Fix its args."))
                continue
            factories.append(functools.partial(obj, **entry.args))
    problems.raise_if_any()
    return factories


def check_code_fields(profile: Profile, config: Any) -> None:
    """Import the references a typed config holds (fields declared with ``param(..., code=True)``).

    So that a custom loss that does not exist, is not callable or is not trusted fails at load
    time with its line, not in the middle of training.
    """
    import dataclasses

    from daedalus.registry import resolve_ref

    problems = Problems()
    for config_field in dataclasses.fields(config):
        value = getattr(config, config_field.name)
        if not config_field.metadata.get("code") or value is None:
            continue
        where = ("config", config_field.name)
        if not is_ref(value):
            problems.add(profile.fail(where, f"'{config_field.name}' must be a reference 'pkg.mod:function' or 'file.py:function', got {value!r}", "Fix the reference."))
            continue
        try:
            obj = resolve_ref(value, profile.base_dir)
        except RegistryError as exc:
            problems.add(profile.fail(where, str(exc).rstrip("."), f"Fix '{config_field.name}'."))
            continue
        if not callable(obj):
            problems.add(profile.fail(where, f"'{value}' is not callable", f"Point '{config_field.name}' at a function."))
    problems.raise_if_any()


def _flat_space(space: Any) -> Any:
    from gymnasium import spaces

    return spaces.flatten_space(space)


#: Observation spaces that have no flat vector form.
_UNFLATTENABLE = ("Graph", "Sequence", "Text")


def check_spaces(profile: Profile, spec: AgentSpec, observation_space: Any, action_space: Any) -> bool:
    """Refuse spaces the agent cannot handle; returns whether observations must be flattened."""
    problems = Problems()
    if spec.action_spaces is not None and type(action_space).__name__ not in spec.action_spaces:
        problems.add(profile.fail(
            ("agent_id",),
            f"agent '{profile.agent_id}' acts in {' or '.join(spec.action_spaces)} action spaces, but "
            f"'{profile.env_id}' has {action_space}",
            f"Use an agent for {type(action_space).__name__} actions (ppo and a2c: Discrete, MultiDiscrete, "
            "Box; dqn: Discrete; sac and td3: Box) or another environment.",
        ))
    flatten = False
    if spec.flat_observations:
        kind = type(observation_space).__name__
        nested = _nested_space_names(observation_space)
        bad = sorted(set(nested) & set(_UNFLATTENABLE))
        if bad:
            problems.add(profile.fail(
                ("env_id",),
                f"agent '{profile.agent_id}' takes flat vector observations, and {', '.join(bad)} "
                f"observation spaces have no flat form ('{profile.env_id}' observes {observation_space})",
                "Add a wrapper that turns observations into a Box (wrappers: [...]) or use another agent.",
            ))
        flatten = kind in ("Dict", "Tuple") and not bad
    problems.raise_if_any()
    return flatten


def _nested_space_names(space: Any) -> list[str]:
    from gymnasium import spaces

    names = [type(space).__name__]
    if isinstance(space, spaces.Dict):
        for sub in space.spaces.values():
            names += _nested_space_names(sub)
    elif isinstance(space, spaces.Tuple):
        for sub in space.spaces:
            names += _nested_space_names(sub)
    return names


def check_memory(profile: Profile, config: Any, observation_space: Any, action_space: Any) -> None:
    """Refuse sizes whose estimated memory exceeds this machine's memory (with the estimate)."""
    from daedalus.params import estimate_memory_bytes, machine_memory_bytes

    estimate = estimate_memory_bytes(config, observation_space, action_space, profile.num_envs)
    available = machine_memory_bytes()
    if available is None or estimate.total <= available:
        return
    gib = 1024**3
    raise profile.fail(
        ("config",),
        f"the sizes in this profile need about {estimate.total / gib:,.1f} GiB "
        f"({estimate.describe()}), more than this machine's {available / gib:,.1f} GiB of memory",
        "Make the largest of them smaller.",
    )


def _with_declared_defaults(defaults: dict[str, Any], profile: Profile) -> dict[str, Any]:
    from daedalus.errors import did_you_mean

    for key in profile.config:
        if key not in defaults:
            hint = did_you_mean(key, list(defaults))
            raise profile.fail(
                ("config", key),
                f"unknown config key '{key}' for agent '{profile.agent_id}'",
                f"{hint.strip() or 'Remove it.'} Declared parameters: {', '.join(defaults) or 'none'}.",
            )
    return {**defaults, **profile.config}


def load(
    path: str | Path, profile_ids: Sequence[str] | None = None, overrides: Sequence[str] = ()
) -> list[ResolvedProfile]:
    """Load and validate profiles from a file: every one is checked before anything trains.

    The problems of all profiles are reported together in one ProfileError.
    """
    problems = Problems()
    resolved = []
    for profile in read_profiles(path, profile_ids, overrides, problems):
        if not (profile.agent_id and profile.env_id):
            continue  # already reported: nothing to resolve
        with problems.collect():
            resolved.append(validate(profile))
    problems.raise_if_any()
    return resolved


# --------------------------------------------------------------------------- agents


def make_agent(resolved: ResolvedProfile) -> Any:
    """Call the agent factory with the arguments its parameter names ask for.

    A multi-agent profile gives a :class:`~daedalus.algos.multi_policy.PolicySet`: one agent per
    policy, each built for its group's spaces and its own config (and started from another run's
    weights when the policy names a ``checkpoint``).
    """
    if resolved.groups is not None:
        return _make_policy_set(resolved)
    space_obs, space_act = resolved.observation_space, resolved.action_space
    shape = getattr(space_obs, "shape", None)
    available: dict[str, Any] = {
        "observation_space": space_obs,
        "action_space": space_act,
        "config": resolved.config,
        "device": resolve_device(resolved.profile.device),
        "obs": shape,
        "obs_shape": shape,
        "env_id": resolved.profile.env_id,
        "seed": resolved.profile.seed,
        "num_envs": resolved.profile.num_envs,
    }
    if shape is not None:
        import math

        available["obs_dim"] = int(math.prod(shape))
    if hasattr(space_act, "n"):
        available["n_actions"] = int(space_act.n)
    if resolved.factory_actor_inputs is not None:
        available["actor_inputs"] = resolved.factory_actor_inputs
    factory = resolved.spec.agent_factory
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(space_obs, space_act, resolved.config)
    kwargs: dict[str, Any] = {}
    for name, param in params.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update({k: v for k, v in available.items() if k not in kwargs})
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        elif name in available:
            kwargs[name] = available[name]
        elif param.default is inspect.Parameter.empty:
            raise ProfileError(
                f"agent '{resolved.profile.agent_id}': its factory asks for '{name}', which Daedalus does not "
                f"provide. Factory parameters are matched by name from: {', '.join(sorted(available))}."
            )
    return factory(**kwargs)


def _make_policy_set(resolved: ResolvedProfile) -> Any:
    import dataclasses

    from daedalus.algos.multi_policy import PolicySet, RandomPlayer

    assert resolved.groups is not None
    agents = {}
    for name in resolved.groups:
        observation_space, action_space = resolved.group_spaces[name]
        spec = resolved.profile.policies.get(name)
        if spec is not None and spec.random:
            agents[name] = RandomPlayer(observation_space, action_space, seed=resolved.profile.seed)
            continue
        single = dataclasses.replace(
            resolved, observation_space=observation_space, action_space=action_space,
            config=resolved.policy_configs.get(name, resolved.config), groups=None,
            factory_actor_inputs=resolved.actor_inputs.get(name),
        )
        agents[name] = make_agent(single)
    policies = resolved.profile.policies
    policy_set = PolicySet(agents, resolved.groups, {name: policies[name].trainable if name in policies else True for name in agents})
    policy_set.one_hot = {name for name in agents if name in policies and policies[name].agent_id_input}
    policy_set.critics = dict(resolved.critics)
    for name in agents:
        ref = policies[name].checkpoint if name in policies else None
        if ref is not None:
            _load_policy_checkpoint(policy_set, name, ref, resolved.profile)
    return policy_set


def _load_policy_checkpoint(policy_set: Any, name: str, ref: str, profile: Profile) -> None:
    """Start policy ``name`` from ``RUN[:POLICY]``'s final (else newest) checkpoint."""
    from safetensors.torch import load_file

    from daedalus.runs.io import read_json
    from daedalus.runs.store import resolve_run

    run, _, source = ref.partition(":") if not Path(ref).exists() else (ref, "", "")
    where = ("policies", name, "checkpoint")
    try:
        folder = resolve_run(run, Path("runs"))
        info = folder.checkpoint(None)
        if info.format != "safetensors":
            raise DaedalusError(f"its checkpoint '{info.name}' is not a built-in agent's")
        tensors = load_file(str(info.path / "weights.safetensors"))
        state = read_json(info.path / "state.json")
        saved = state.get("policies") if isinstance(state, dict) else None
        source = source or (next(iter(saved)) if isinstance(saved, dict) and len(saved) == 1 else name)
        if not isinstance(saved, dict):
            raise DaedalusError("it is not a multi-agent run (no policies in its checkpoint)")
        policy_set.load_policy(name, tensors, state, source)
    except (DaedalusError, ValueError, OSError) as exc:
        raise profile.fail(where, f"policy '{name}' cannot start from '{ref}': {exc}", "Name a multi-agent run folder or id, optionally ':POLICY'.") from None


# --------------------------------------------------------------------------- trust


def code_references(profile: Profile) -> list[tuple[str, str]]:
    """``(key, reference)`` for every ``pkg.mod:Obj`` / ``file.py:Obj`` a profile names."""
    refs = [("agent_id", profile.agent_id), ("env_id", profile.env_id)]
    refs += [(f"wrappers[{i}]", w.ref) for i, w in enumerate(profile.wrappers)]
    refs += [(f"callbacks[{i}]", c.ref) for i, c in enumerate(profile.callbacks)]
    refs += [(f"config.{key}", value) for key, value in profile.config.items() if key == "loss" and isinstance(value, str)]
    loop = profile.loop or {}
    if isinstance(loop.get("class"), str):
        refs.append(("loop.class", loop["class"]))
    return [(key, ref) for key, ref in refs if is_ref(ref) and not _is_plain_gym_id(ref)]


def _is_plain_gym_id(env_id: str) -> bool:
    import gymnasium

    return env_id in gymnasium.registry



def restores_torch_threads(func: Callable[P, R]) -> Callable[P, R]:
    """Give torch's thread count back when ``func`` returns (``load_run`` sets the run's own count for
    its evaluation; a command that loads a run and finishes with it must not leave that behind, since
    the next agent built in this process is initialised with the ambient count)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import sys

        torch = sys.modules.get("torch")  # never imported here: NumPy-only agents stay torch-free
        previous = torch.get_num_threads() if torch is not None else None
        try:
            return func(*args, **kwargs)
        finally:
            torch = sys.modules.get("torch")
            target = previous if previous is not None else _INITIAL_THREADS
            if torch is not None and target is not None:
                torch.set_num_threads(target)

    return wrapper


def apply_torch_threads(config: Any) -> int | None:
    """Set torch's CPU threads from the config's ``torch_threads`` (when > 0); returns the previous count.

    Training, periodic and final evaluation and ``daedalus evaluate`` then all run with the
    count the profile chose: torch's default (one thread per core) stalls a small network on a
    machine where another process keeps a core busy. None when nothing was changed.
    """
    global _INITIAL_THREADS
    threads = getattr(config, "torch_threads", None)
    if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
        import torch

        previous = torch.get_num_threads()
        if _INITIAL_THREADS is None:
            _INITIAL_THREADS = previous
        torch.set_num_threads(threads)
        return previous
    return None


#: torch's thread count before :func:`apply_torch_threads` first changed it in this process.
_INITIAL_THREADS: int | None = None


def initial_torch_threads() -> int | None:
    """torch's thread count before Daedalus first changed it (None: torch not loaded, or never changed).

    A run builds its agent with this count whatever ran before in the process (``load_run`` keeps the
    run's own count for evaluation): orthogonal initialisation (a QR) rounds differently with another
    thread count, so a seed must not give another network after a ``load_run``.
    """
    return _INITIAL_THREADS


# --------------------------------------------------------------------------- saved runs


@dataclass
class LoadedRun:
    """A saved run: its run.json, its resolved profile and the agent restored from a checkpoint."""

    path: Path
    meta: dict[str, Any]
    profile: Profile
    agent: Any
    checkpoint: str
    resolved: ResolvedProfile = field(repr=False)


def load_run(
    path: str | Path,
    checkpoint: str | None = None,
    runs_dir: str | Path | None = None,
    *,
    trust_code: bool = False,
) -> LoadedRun:
    """Load a run folder: metadata, resolved profile and the agent from ``checkpoint``.

    The default checkpoint is ``final`` when it exists, else the newest one.

    A run folder is data. Unless ``trust_code`` is true, its profile may only name built-in
    agents, envs and wrappers, Gymnasium ids, ids registered by the current project and
    plugins, and references into the current project's modules (``.daedalus.yaml`` found
    from the working directory, never from the run folder); anything else raises a
    TrustError before it is imported. With ``trust_code``, the references that will be
    imported are printed first. See docs/security.md.
    """
    from daedalus.registry import load_project_modules, untrusted_source

    load_project_modules()
    folder = resolve_run(path, Path(runs_dir) if runs_dir else None)
    meta = folder.refresh_status()
    profile_file = folder.path / "profile.yaml"
    if not profile_file.is_file():
        raise RunError(f"{folder.path}: profile.yaml is missing, so the agent cannot be rebuilt.")
    (profile,) = load_profiles(profile_file)
    if trust_code:
        refs = code_references(profile)
        if refs:
            listed = "; ".join(f"{key}: {ref}" for key, ref in refs)
            print(f"--trust-code: importing code named by {folder.path}: {listed}", file=sys.stderr, flush=True)
        resolved = validate(profile)
    else:
        with untrusted_source(f"run folder {folder.path}"):
            resolved = validate(profile)
    info = folder.checkpoint(checkpoint)
    agent = make_agent(resolved)
    apply_torch_threads(resolved.config)  # evaluation runs with the thread count the run trained with
    load_checkpoint_into(agent, info)
    return LoadedRun(folder.path, meta, profile, agent, info.name, resolved)
