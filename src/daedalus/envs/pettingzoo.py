"""PettingZoo environments, vectorized, with their agents arranged in named groups.

:func:`make_pettingzoo` builds one PettingZoo env from a reference; :class:`NamedMultiAgentVecEnv`
runs ``num_envs`` copies of it and presents each **group** of agents (the agents that share one
policy) as arrays with a flat row axis, as :class:`~daedalus.envs.vector.MultiAgentVectorEnv`
does for one homogeneous group.

Rows of a group are copy-major: row ``copy * len(agents) + k`` is ``agents[k]`` of that copy,
named ``"<agent>&env=<copy>"`` (Coltra's naming; names exist only at the edges, arrays inside).
:class:`GymnasiumAsParallel` presents one Gymnasium env as a Parallel env with one agent.

Semantics shared by both PettingZoo APIs:

- ``SAME_STEP`` autoreset: when every agent of a copy is done (or its ``agents`` list is empty),
  the copy is reset inside the same :meth:`~NamedMultiAgentVecEnv.step`; ``obs`` is already the
  reset observation and ``final_obs`` holds the real last observation of every row whose episode
  ended.
- A row is **present** while its agent is in the env's ``agents`` and not done. Rows of absent
  agents (finished early, not yet appeared, or never in this episode) get all-zero observations
  and ``valid=False``; they are never counted as acting and never given an action.
- ``valid`` marks the rows whose agent acted at this step: every present agent of a Parallel env;
  only ``agent_selection`` of an AEC env.
- An agent whose episode ended stays absent until its copy resets.

Parallel envs: an agent's reward, ``terminated`` and ``truncated`` are on its row at the step it
acted; rewards the env gives to agents that did not act this step are dropped (no action of
theirs earned them).

AEC (turn-based) envs: one vector step is one turn of every copy. Rewards are those of PettingZoo's
``last()``: when an agent is selected to act, or makes its final ``last()`` before being removed,
the reward accumulated since its previous move is put on its row at that vector step. So an
agent's reward for a move is everything it receives until its next turn or its episode end, and
it arrives on a later step, usually one where the row is ``valid=False``. **A learner must add the
rewards of an agent's invalid steps to its previous valid step**, and likewise move the
``terminated`` / ``truncated`` flag (set at the step of the agent's final ``last()``) onto its last
valid step. The episode of a copy ends after the final ``last()`` of every agent.

Action masks (PettingZoo classic: ``{"observation", "action_mask"}`` observations, or
``info["action_mask"]``): :meth:`~NamedMultiAgentVecEnv.action_masks` gives the env's mask for the
rows that act at the next step; every other row (absent agents, AEC agents waiting for their turn)
gets an **all-True** row, so a masked distribution stays finite there; their actions are ignored.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from daedalus.errors import DaedalusError, MissingDependencyError, did_you_mean

__all__ = [
    "PETTINGZOO_APIS",
    "ROW_NAME_SEPARATOR",
    "GroupStep",
    "GymnasiumAsParallel",
    "NamedMultiAgentVecEnv",
    "env_api",
    "is_aec",
    "is_pettingzoo",
    "make_pettingzoo",
    "parse_row_name",
    "row_name",
]

#: Between an agent's name and its copy index in a row name: ``pursuer_0&env=3``.
ROW_NAME_SEPARATOR = "&env="
#: ``api`` values of :func:`make_pettingzoo`.
PETTINGZOO_APIS = ("auto", "parallel", "aec")
#: Missing top-level modules that the ``ma`` extra installs.
_MA_MODULES = {"pettingzoo": "pettingzoo", "mpe2": "mpe2"}
_ARRAY_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
_NO_RETURNS = np.zeros(0, dtype=np.float64)
_NO_LENGTHS = np.zeros(0, dtype=np.int64)
for _array in (_NO_RETURNS, _NO_LENGTHS):
    _array.flags.writeable = False


# --------------------------------------------------------------------------- making envs


def make_pettingzoo(ref: str, env_args: Mapping[str, Any] | None = None, api: str = "auto") -> Any:
    """Build a PettingZoo env from ``"module:name"``, e.g. ``mpe2:simple_spread_v3``.

    ``name`` is an env module of ``module`` (``pettingzoo.sisl:pursuit_v5``,
    ``pettingzoo.classic:tictactoe_v3``) or a constructor inside one
    (``mpe2:simple_spread_v3.env``), called with ``env_args``.

    Parallel or AEC: naming the constructor picks it (``.parallel_env`` or ``.env``); so does
    ``api="parallel"`` / ``"aec"``. With ``api="auto"``, an env module is built with
    ``parallel_env(**env_args)`` when it has one and with ``env(**env_args)`` otherwise. PettingZoo
    defines ``parallel_env`` only for envs whose agents act simultaneously, so turn-based games
    (the classic ones: tictactoe, chess, connect four, ...) come out as AEC envs and
    simultaneous ones (MPE, SISL, butterfly, classic rock-paper-scissors) as Parallel envs.
    PettingZoo's own envs (``pettingzoo.<family>:<env>_v<N>``) are built through its registry
    (``pettingzoo.make``) where the installed PettingZoo has one, which is the same constructor
    without the deprecation warning of the old module API.

    Importing ``module`` runs its code: callers that build envs named by untrusted files check the
    reference first. Raises :class:`~daedalus.errors.MissingDependencyError` when PettingZoo or
    MPE2 is not installed, :class:`~daedalus.errors.DaedalusError` for anything else wrong.
    """
    if api not in PETTINGZOO_APIS:
        raise DaedalusError(f"Unknown PettingZoo api '{api}'. Use one of: {', '.join(PETTINGZOO_APIS)}.")
    module_name, colon, attr_path = ref.partition(":")
    if not colon or not module_name or not attr_path:
        raise DaedalusError(
            f"PettingZoo reference '{ref}' is not of the form 'module:env', e.g. 'mpe2:simple_spread_v3' "
            "or 'pettingzoo.classic:tictactoe_v3'."
        )
    env_args = dict(env_args or {})
    obj: Any = _import_module(module_name, ref)  # a missing MPE2 or PettingZoo is reported first
    _import_module("pettingzoo", ref)
    env = _make_registered(ref, env_args, api)
    if env is None:
        for part in attr_path.split("."):
            obj = _attribute(obj, part, ref)
        if callable(obj):
            constructor = obj
        elif hasattr(obj, "env") or hasattr(obj, "parallel_env"):  # an env module (or PettingZoo's stand-in for an old version)
            constructor = getattr(obj, _constructor_name(obj, api, ref))
        else:
            raise DaedalusError(f"PettingZoo reference '{ref}' names a {type(obj).__name__}, not an env module or constructor.")
        env = _call(constructor, env_args, ref)
    if not is_pettingzoo(env):
        raise DaedalusError(f"'{ref}' built a {type(env).__name__}, not a PettingZoo Parallel or AEC env.")
    return env


def _make_registered(ref: str, env_args: dict[str, Any], api: str) -> Any:
    """``pettingzoo.make`` for a ``pettingzoo.<family>:<env>_v<N>[.env|.parallel_env]`` reference
    that PettingZoo's registry knows; None otherwise (the module path is used then)."""
    import pettingzoo

    match = re.fullmatch(r"pettingzoo\.(\w+):(\w+)_v(\d+)(?:\.(env|parallel_env))?", ref)
    if match is None or not hasattr(pettingzoo, "make"):
        return None
    family, name, version, constructor = match.groups()
    env_id = f"{family}/{name}-v{version}"
    if constructor is not None:
        api = "parallel" if constructor == "parallel_env" else "aec"
    if api == "auto":
        api = "parallel" if env_id in pettingzoo.parallel_registry else "aec"
    registry = pettingzoo.parallel_registry if api == "parallel" else pettingzoo.aec_registry
    if env_id not in registry:
        other = pettingzoo.aec_registry if api == "parallel" else pettingzoo.parallel_registry
        if env_id in other:
            raise DaedalusError(
                f"PettingZoo environment '{ref}' has no {api} version"
                + (" (its agents take turns); use api 'aec' or 'auto'." if api == "parallel" else "; use api 'parallel' or 'auto'.")
            )
        return None
    return _call(lambda **kwargs: pettingzoo.make(api, env_id, **kwargs), env_args, ref)


def _call(constructor: Callable[..., Any], env_args: dict[str, Any], ref: str) -> Any:
    try:
        return constructor(**env_args)
    except TypeError as exc:
        raise DaedalusError(f"PettingZoo environment '{ref}' rejected env_args {env_args}: {exc}. Fix env_args.") from None
    except Exception as exc:
        # PettingZoo's DeprecatedEnv (old env versions) and its registry's FailedToImport
        # (a package an env family needs is missing) carry the fix in their message.
        if isinstance(exc, ImportError) or type(exc).__name__ == "FailedToImport":
            raise DaedalusError(f"PettingZoo environment '{ref}' cannot be built: {exc}") from None
        raise


def _import_module(name: str, ref: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or name).partition(".")[0]
        feature = f"The PettingZoo environment '{ref}'"
        if missing in _MA_MODULES:
            raise MissingDependencyError(_MA_MODULES[missing], "ma", feature) from None
        if missing == name.partition(".")[0]:
            raise DaedalusError(f"{feature} names module '{name}', which cannot be imported: {exc}.") from None
        raise DaedalusError(
            f"{feature} needs the module '{missing}', which is not installed. Install the package that "
            f"provides it (PettingZoo lists them per family, e.g. pip install 'pettingzoo[classic]')."
        ) from None


def _attribute(obj: Any, name: str, ref: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError:
        pass
    except ImportError as exc:  # PettingZoo's lazy env modules import on attribute access
        raise DaedalusError(f"PettingZoo environment '{ref}' cannot be imported: {exc}") from None
    if isinstance(obj, ModuleType):
        try:
            return importlib.import_module(f"{obj.__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{obj.__name__}.{name}":
                return _import_module(f"{obj.__name__}.{name}", ref)  # reports the missing package
    raise DaedalusError(f"PettingZoo reference '{ref}': '{getattr(obj, '__name__', obj)}' has no '{name}'.")


def _constructor_name(module: Any, api: str, ref: str) -> str:
    has_parallel, has_aec = hasattr(module, "parallel_env"), hasattr(module, "env")
    if api == "parallel" and not has_parallel:
        raise DaedalusError(
            f"PettingZoo environment '{ref}' has no parallel_env (its agents take turns); use api 'aec' "
            "or leave api 'auto'."
        )
    if api == "aec" and not has_aec:
        raise DaedalusError(f"PettingZoo environment '{ref}' has no env() constructor; use api 'parallel'.")
    if api == "parallel" or (api == "auto" and has_parallel):
        return "parallel_env"
    if not has_aec:
        raise DaedalusError(f"'{ref}' is not a PettingZoo env module: it has neither parallel_env() nor env().")
    return "env"


def is_pettingzoo(env: Any) -> bool:
    """True for a PettingZoo Parallel or AEC env, or a :class:`GymnasiumAsParallel` (never imports PettingZoo)."""
    if isinstance(env, GymnasiumAsParallel):
        return True
    pettingzoo = sys.modules.get("pettingzoo")  # an instance of its classes implies it is imported
    return pettingzoo is not None and isinstance(env, (pettingzoo.ParallelEnv, pettingzoo.AECEnv))


def is_aec(env: Any) -> bool:
    """True for a PettingZoo AEC (turn-based, ``agent_selection``) env."""
    pettingzoo = sys.modules.get("pettingzoo")
    return pettingzoo is not None and isinstance(env, pettingzoo.AECEnv)


def env_api(env: Any, name: str = "environment") -> str:
    """Which API ``env`` follows: ``"gymnasium"``, ``"array_multi_agent"``, ``"parallel"`` or ``"aec"``.

    Raises a :class:`~daedalus.errors.DaedalusError` naming ``name`` for anything else.
    """
    from daedalus.envs.vector import is_multi_agent

    if is_pettingzoo(env):
        return "aec" if is_aec(env) else "parallel"
    if isinstance(env, gym.Env):
        return "gymnasium"
    if is_multi_agent(env):
        return "array_multi_agent"
    raise DaedalusError(
        f"{name} built a {type(env).__module__}.{type(env).__qualname__}, which is neither a Gymnasium env "
        "(gymnasium.Env), a PettingZoo env (pettingzoo.ParallelEnv or AECEnv) nor an array multi-agent "
        "env (daedalus.envs.vector.ArrayMultiAgentEnv). Return one of those from the env factory."
    )


def row_name(agent: str, copy: int) -> str:
    """The name of ``agent``'s row in env copy ``copy``: ``pursuer_0&env=3``."""
    return f"{agent}{ROW_NAME_SEPARATOR}{copy}"


def parse_row_name(name: str) -> tuple[str, int]:
    """``"pursuer_0&env=3"`` -> ``("pursuer_0", 3)``."""
    agent, separator, copy = name.rpartition(ROW_NAME_SEPARATOR)
    if not separator or not copy.isdigit():
        raise DaedalusError(f"'{name}' is not a row name of the form 'agent{ROW_NAME_SEPARATOR}<copy>'.")
    return agent, int(copy)


# --------------------------------------------------------------------------- one Gymnasium env as one agent


class GymnasiumAsParallel:
    """One Gymnasium env as a PettingZoo Parallel env with one agent (``agent_0`` by default).

    The one-agent case of multi-agent training: a Gymnasium env in a profile with ``policies``
    trains through :class:`NamedMultiAgentVecEnv` like any PettingZoo env. The Parallel API is
    duck-typed (PettingZoo need not be installed); :func:`is_pettingzoo` accepts it.

    Nothing is added to the env's dynamics or randomness: ``reset(seed, options)`` and
    ``step`` are the env's own, so ``num_envs`` copies seeded ``seed + i`` and reset with
    ``seed=None`` after each episode step exactly as the single-agent path's sync vector env
    (``SAME_STEP`` autoreset) steps them. After termination or truncation ``agents`` is empty
    until the next :meth:`reset`.
    """

    metadata: dict[str, Any] = {"is_parallelizable": True}

    def __init__(self, env: gym.Env[Any, Any], agent: str = "agent_0") -> None:
        if not isinstance(env, gym.Env):
            raise DaedalusError(f"GymnasiumAsParallel wraps a Gymnasium env (gymnasium.Env), got a {type(env).__name__}.")
        self.env = env
        self.agent = agent
        self.possible_agents: list[str] = [agent]
        #: ``[agent]`` while an episode runs, ``[]`` before the first reset and after it ends.
        self.agents: list[str] = []
        self.observation_spaces: dict[str, gym.Space[Any]] = {agent: env.observation_space}
        self.action_spaces: dict[str, gym.Space[Any]] = {agent: env.action_space}
        self.metadata = {**self.metadata, **getattr(env, "metadata", {})}
        self.render_mode = getattr(env, "render_mode", None)

    def __repr__(self) -> str:
        return f"GymnasiumAsParallel({self.env}, agent={self.agent!r})"

    @property
    def unwrapped(self) -> GymnasiumAsParallel:
        """This env (PettingZoo's ``unwrapped``; the Gymnasium env is :attr:`env`)."""
        return self

    @property
    def max_num_agents(self) -> int:
        """1."""
        return 1

    def observation_space(self, agent: str) -> gym.Space[Any]:
        """The Gymnasium env's observation space (the same object at every call)."""
        return self.observation_spaces[self._check(agent)]

    def action_space(self, agent: str) -> gym.Space[Any]:
        """The Gymnasium env's action space (the same object at every call)."""
        return self.action_spaces[self._check(agent)]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``env.reset(seed=seed, options=options)`` as ``({agent: obs}, {agent: info})``."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.agents = [self.agent]
        return {self.agent: obs}, {self.agent: info}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]:
        """``env.step(actions[agent])``, every result keyed by the agent."""
        if not self.agents:
            raise DaedalusError("GymnasiumAsParallel.step() called with no episode running; call reset() first.")
        if self.agent not in actions:
            raise DaedalusError(f"step() needs an action for '{self.agent}', got actions for {sorted(actions)}.")
        obs, reward, terminated, truncated, info = self.env.step(actions[self.agent])
        if terminated or truncated:
            self.agents = []
        agent = self.agent
        return {agent: obs}, {agent: float(reward)}, {agent: bool(terminated)}, {agent: bool(truncated)}, {agent: info}

    def render(self) -> Any:
        """``env.render()``."""
        return self.env.render()

    def close(self) -> None:
        """``env.close()``."""
        self.env.close()

    def _check(self, agent: str) -> str:
        if agent != self.agent:
            raise DaedalusError(f"This env has one agent, '{self.agent}'; got '{agent}'.")
        return agent


# --------------------------------------------------------------------------- the vector env


@dataclass
class GroupStep:
    """One vector step of one group: arrays have ``num_rows[group]`` rows (copy-major)."""

    #: Observation to act on next (already reset where a copy's episode ended; zeros for absent rows).
    obs: np.ndarray
    #: float32; see the module docstring for when rewards arrive (AEC: on later, invalid steps).
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    #: Real last observation where ``terminated | truncated``; other rows as ``obs``.
    final_obs: np.ndarray
    #: The row's agent was present and acted at this step.
    valid: np.ndarray
    #: Undiscounted return and valid-step count of each agent whose episode ended at this step,
    #: in row order (the rows where ``terminated | truncated``; see ``episode_rows``).
    episode_returns: np.ndarray = field(default_factory=lambda: _NO_RETURNS)
    episode_lengths: np.ndarray = field(default_factory=lambda: _NO_LENGTHS)
    #: The row of each entry of ``episode_returns``.
    episode_rows: np.ndarray = field(default_factory=lambda: _NO_LENGTHS)
    #: For each copy whose episode ended at this step (in copy order): the sum of the rewards
    #: of all its agents, every group; the same in every group's GroupStep.
    team_returns: np.ndarray = field(default_factory=lambda: _NO_RETURNS)
    #: Vector steps of those episodes, and the copies they were in.
    team_lengths: np.ndarray = field(default_factory=lambda: _NO_LENGTHS)
    ended_copies: np.ndarray = field(default_factory=lambda: _NO_LENGTHS)


@dataclass
class _Group:
    """One group: its agents, one agent's spaces, how to read its observations and masks."""

    name: str
    agents: list[str]
    #: One agent's observation space as the learner sees it (``observation`` part, one-hot added).
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype[Any]
    #: Whether observations are dicts ``{"observation", "action_mask"}``.
    dict_obs: bool
    #: Length of one row of action mask (None: no mask seen yet; set by the first one in infos).
    mask_size: int | None
    #: Width of the env's own observation when a one-hot id is appended (else None).
    one_hot_offset: int | None
    discrete_actions: bool


class _StepOut:
    """The arrays one step fills for one group."""

    def __init__(self, group: _Group, rows: int) -> None:
        self.obs = np.zeros((rows, *group.obs_shape), dtype=group.obs_dtype)
        self.rewards = np.zeros(rows, dtype=np.float32)
        self.terminated = np.zeros(rows, dtype=bool)
        self.truncated = np.zeros(rows, dtype=bool)
        self.valid = np.zeros(rows, dtype=bool)
        self.final: list[tuple[int, Any]] = []


class NamedMultiAgentVecEnv:
    """``num_envs`` copies of a PettingZoo env (Parallel or AEC), agents arranged in named groups.

    ``make_env(seed)`` builds copy ``i`` (called with ``seed + i``, or None). ``groups`` maps a
    group name (a policy name) to the possible agents in it, in row order; every possible agent
    must be in exactly one group, and the agents of a group must share observation and action
    spaces. Observations must be arrays (Box, Discrete, MultiDiscrete, MultiBinary) or PettingZoo
    classic's ``{"observation", "action_mask"}`` dicts, whose ``observation`` part is used.

    ``one_hot_agent_id=True`` appends a one-hot of the agent's index within its group to its
    (1-D) observation: shape ``(d,)`` becomes ``(d + len(agents),)``, dtype float32. Absent rows
    stay all zeros, one-hot included. A collection of group names does it for those groups only.

    ``centralized_critic`` (group names) gives those groups' rows what a centralized critic
    (MAPPO) reads after the agent's own observation: each row becomes ``[own (d) | every agent
    of the group in the same copy, in group order (K*d) | one-hot of the agent's index (K)]``,
    flattened, float32. The actor reads the first ``d`` numbers only (``actor_inputs``).
    ``state_critic`` (group names) does the same with the env's global state instead of the
    group's observations: ``[own (d) | env.state() of the copy (S) | one-hot (K)]``.

    Semantics (autoreset, absent agents, AEC rewards, masks): see the module docstring.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        make_env: Callable[[int | None], Any],
        num_envs: int,
        groups: Mapping[str, Sequence[str]],
        seed: int | None = None,
        one_hot_agent_id: bool | Collection[str] = False,
        centralized_critic: Collection[str] = (),
        state_critic: Collection[str] = (),
    ) -> None:
        if num_envs < 1:
            raise DaedalusError(f"num_envs must be at least 1, got {num_envs}.")
        self.num_envs = num_envs
        self._seed = seed
        self.envs: list[Any] = []
        try:
            for i in range(num_envs):
                env = make_env(None if seed is None else seed + i)
                self.envs.append(env)
                if not is_pettingzoo(env):
                    api = env_api(env, "make_env")  # raises for an env of no known API
                    raise DaedalusError(
                        f"NamedMultiAgentVecEnv needs PettingZoo envs, but make_env built a {type(env).__name__} "
                        f"({api} API)."
                    )
            self.is_aec = is_aec(self.envs[0])
            self.possible_agents: list[str] = list(self.envs[0].possible_agents)
            for i, env in enumerate(self.envs[1:], start=1):
                if list(env.possible_agents) != self.possible_agents or is_aec(env) != self.is_aec:
                    raise DaedalusError(
                        f"env copy {i} differs from copy 0 (possible agents {list(env.possible_agents)} vs "
                        f"{self.possible_agents}, or Parallel vs AEC): make_env must build the same env every time."
                    )
            self._groups = self._check_groups(groups, one_hot_agent_id)
        except BaseException:
            self.close()
            raise
        #: Group name -> its possible agents, in row order.
        self.groups: dict[str, list[str]] = {name: list(g.agents) for name, g in self._groups.items()}
        #: Group name -> ``num_envs * len(agents)``.
        self.num_rows: dict[str, int] = {name: num_envs * len(g.agents) for name, g in self._groups.items()}
        #: Group name -> ``["<agent>&env=<copy>", ...]`` in row order.
        self.row_names: dict[str, list[str]] = {
            name: [row_name(agent, copy) for copy in range(num_envs) for agent in g.agents]
            for name, g in self._groups.items()
        }
        #: Group -> (d, K): the rows of these groups carry joint observations for a centralized critic.
        self.centralized: dict[str, tuple[int, int]] = {}
        for name in centralized_critic:
            if name not in self._groups:
                self.close()
                raise DaedalusError(f"centralized_critic names group '{name}', which is not one of {', '.join(self._groups)}.")
            self.centralized[name] = (gym.spaces.flatdim(self._groups[name].observation_space), len(self._groups[name].agents))
        #: Group -> (d, K, S) for the groups whose critic reads the env's global state.
        self.state_groups: dict[str, tuple[int, int, int]] = {}
        self._state: list[np.ndarray] = []
        self._final_state: list[np.ndarray] = []
        if state_critic:
            state_space = getattr(self.envs[0], "state_space", None)
            if state_space is not None:
                state_size = gym.spaces.flatdim(state_space)
            else:  # no declared space: look at one state (PettingZoo envs only have one after a reset)
                self.envs[0].reset(seed=seed)
                state_size = self._read_state(0).size
            for name in state_critic:
                if name not in self._groups or name in self.centralized:
                    self.close()
                    raise DaedalusError(f"state_critic names group '{name}', which is not a group (or already has a centralized critic).")
                self.state_groups[name] = (gym.spaces.flatdim(self._groups[name].observation_space), len(self._groups[name].agents), state_size)
        #: Group name -> the ``actor_inputs`` of a centralized-critic group (its own observation's length).
        self.actor_inputs: dict[str, int] = {name: d for name, (d, _) in self.centralized.items()}
        self.actor_inputs.update({name: d for name, (d, _, _) in self.state_groups.items()})
        #: One agent's spaces per group (observation: the ``observation`` part, one-hot included;
        #: for a centralized-critic group, the joint row described above).
        self.observation_spaces: dict[str, gym.Space[Any]] = {
            n: (
                gym.spaces.Box(-np.inf, np.inf, (self.centralized[n][0] * (1 + self.centralized[n][1]) + self.centralized[n][1],), np.float32)
                if n in self.centralized
                else gym.spaces.Box(-np.inf, np.inf, (sum(self.state_groups[n][::2]) + self.state_groups[n][1],), np.float32)
                if n in self.state_groups
                else g.observation_space
            )
            for n, g in self._groups.items()
        }
        self.action_spaces: dict[str, gym.Space[Any]] = {n: g.action_space for n, g in self._groups.items()}
        self._slot: dict[str, tuple[_Group, int]] = {
            agent: (g, k) for g in self._groups.values() for k, agent in enumerate(g.agents)
        }
        # Per copy: present agents (in env order), and agents whose episode ended (absent until reset).
        self._present: list[list[str]] = [[] for _ in range(num_envs)]
        self._done: list[set[str]] = [set() for _ in range(num_envs)]
        self._agent_return = {n: np.zeros(r, dtype=np.float64) for n, r in self.num_rows.items()}
        self._agent_length = {n: np.zeros(r, dtype=np.int64) for n, r in self.num_rows.items()}
        self._team_return = np.zeros(num_envs, dtype=np.float64)
        self._team_length = np.zeros(num_envs, dtype=np.int64)
        # Masks declared by the observation space are there from the start (all True until reset).
        self._masks: dict[str, np.ndarray | None] = {
            n: None if g.mask_size is None else np.ones((self.num_rows[n], g.mask_size), dtype=bool)
            for n, g in self._groups.items()
        }
        self._acting: dict[str, np.ndarray] = {n: np.zeros(r, dtype=bool) for n, r in self.num_rows.items()}
        self._needs_reset = True

    # ------------------------------------------------------------------ construction checks

    def _check_groups(self, groups: Mapping[str, Sequence[str]], one_hot: bool | Collection[str]) -> dict[str, _Group]:
        problems: list[str] = []
        owner: dict[str, str] = {}
        for name, agents in groups.items():
            if isinstance(agents, str):
                problems.append(f"group '{name}' must list agent names, got the string '{agents}'.")
                continue
            if not agents:
                problems.append(f"group '{name}' has no agents; remove it or list its agents.")
            for agent in agents:
                if agent not in self.possible_agents:
                    problems.append(
                        f"group '{name}' lists '{agent}', which is not a possible agent of the env "
                        f"({', '.join(self.possible_agents)}).{did_you_mean(agent, self.possible_agents)}"
                    )
                elif agent in owner:
                    where = f"groups '{owner[agent]}' and '{name}'" if owner[agent] != name else f"group '{name}' twice"
                    problems.append(f"agent '{agent}' is in {where}; put each agent in exactly one group.")
                else:
                    owner[agent] = name
        missing = [agent for agent in self.possible_agents if agent not in owner]
        if missing:
            problems.append(f"agents {', '.join(missing)} are in no group; every possible agent must be in exactly one.")
        if not problems:
            built = {}
            for name, agents in groups.items():
                try:
                    wanted = one_hot if isinstance(one_hot, bool) else name in one_hot
                    built[name] = self._build_group(name, list(agents), wanted)
                except DaedalusError as exc:
                    problems.append(str(exc))
            if not problems:
                return built
        raise DaedalusError("Invalid agent groups:\n" + "\n".join(f"  - {p}" for p in problems))

    def _build_group(self, name: str, agents: list[str], one_hot: bool) -> _Group:
        env = self.envs[0]
        spaces = {agent: (env.observation_space(agent), env.action_space(agent)) for agent in agents}
        first = agents[0]
        differing = [agent for agent in agents[1:] if spaces[agent] != spaces[first]]
        if differing:
            described = "; ".join(
                f"{agent}: observation {spaces[agent][0]}, action {spaces[agent][1]}" for agent in [first, *differing]
            )
            raise DaedalusError(
                f"agents in group '{name}' must share observation and action spaces, but they differ ({described}). "
                "Put agents with different spaces in separate groups (e.g. by name prefix)."
            )
        obs_space, action_space = spaces[first]
        dict_obs, mask_size = False, None
        if isinstance(obs_space, gym.spaces.Dict) and "observation" in obs_space.spaces:
            dict_obs = True
            if "action_mask" in obs_space.spaces:
                mask_size = int(np.prod(obs_space["action_mask"].shape or ()))
            obs_space = obs_space["observation"]
        if not isinstance(obs_space, _ARRAY_SPACES):
            raise DaedalusError(
                f"group '{name}': observation space {obs_space} is not an array space (Box, Discrete, "
                "MultiDiscrete, MultiBinary). Flatten it with a PettingZoo wrapper in make_env."
            )
        shape, dtype = tuple(obs_space.shape or ()), np.dtype(obs_space.dtype)
        offset = None
        if one_hot:
            if len(shape) != 1 or not isinstance(obs_space, gym.spaces.Box):
                raise DaedalusError(
                    f"group '{name}': one_hot_agent_id needs a 1-D Box observation, got {obs_space}. "
                    "Turn it off, or flatten observations in make_env."
                )
            n = len(agents)
            low = np.concatenate([obs_space.low.astype(np.float32), np.zeros(n, dtype=np.float32)])
            high = np.concatenate([obs_space.high.astype(np.float32), np.ones(n, dtype=np.float32)])
            offset, obs_space = shape[0], gym.spaces.Box(low, high, dtype=np.float32)
            shape, dtype = (shape[0] + n,), np.dtype(np.float32)
        return _Group(
            name=name,
            agents=agents,
            observation_space=obs_space,
            action_space=action_space,
            obs_shape=shape,
            obs_dtype=dtype,
            dict_obs=dict_obs,
            mask_size=mask_size,
            one_hot_offset=offset,
            discrete_actions=isinstance(action_space, gym.spaces.Discrete),
        )

    # ------------------------------------------------------------------ public API

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Reset every copy (copy ``i`` with ``seed + i``; default: the constructor's seed).

        Returns each group's observations, ``(num_rows[group], *obs_shape)``.
        """
        seed = self._seed if seed is None else seed
        outs = self._new_outs()
        for name in self._groups:
            self._agent_return[name][:] = 0.0
            self._agent_length[name][:] = 0
        self._team_return[:] = 0.0
        self._team_length[:] = 0
        for copy in range(self.num_envs):
            self._reset_copy(copy, outs, None if seed is None else seed + copy)
        if self.state_groups:
            self._state = [self._read_state(copy) for copy in range(self.num_envs)]
            self._final_state = list(self._state)
        self._needs_reset = False
        return {name: self._joint(name, out.obs) for name, out in outs.items()}

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, GroupStep]:
        """Apply each group's actions (``(num_rows[group], ...)``) to the rows that act.

        Only present agents' actions (AEC: the selected agent's) reach the env; other rows'
        actions are ignored. Returns one :class:`GroupStep` per group.
        """
        if self._needs_reset:
            raise DaedalusError("NamedMultiAgentVecEnv.step() called before reset(); call reset() first.")
        actions = self._check_actions(actions)
        outs = self._new_outs()
        ended: list[int] = []
        team_returns: list[float] = []
        team_lengths: list[int] = []
        for copy in range(self.num_envs):
            if self.is_aec:
                copy_ended = self._step_aec(copy, actions, outs)
            else:
                copy_ended = self._step_parallel(copy, actions, outs)
            self._team_length[copy] += 1
            if self.state_groups:  # the state the step led to (before an ended copy is reset)
                self._final_state[copy] = self._state[copy] = self._read_state(copy)
            if copy_ended:
                ended.append(copy)
                team_returns.append(float(self._team_return[copy]))
                team_lengths.append(int(self._team_length[copy]))
                self._team_return[copy] = 0.0
                self._team_length[copy] = 0
                self._reset_copy(copy, outs, None)
                if self.state_groups:
                    self._state[copy] = self._read_state(copy)
        team = (
            (np.asarray(team_returns, dtype=np.float64), np.asarray(team_lengths, dtype=np.int64), np.asarray(ended, dtype=np.int64))
            if ended
            else (_NO_RETURNS, _NO_LENGTHS, _NO_LENGTHS)
        )
        steps = {name: self._group_step(name, out, *team) for name, out in outs.items()}
        for name in [*self.centralized, *self.state_groups]:
            step = steps[name]
            final_is_obs = step.final_obs is step.obs
            step.obs = self._joint(name, step.obs)
            step.final_obs = step.obs if final_is_obs else self._joint(name, step.final_obs, final=True)
        return steps

    def _read_state(self, copy: int) -> np.ndarray:
        """``env.state()`` of a copy, flat float32 (a clear error when the env has none)."""
        state_fn = getattr(self.envs[copy], "state", None)
        try:
            state = state_fn() if callable(state_fn) else None
        except NotImplementedError:
            state = None
        if state is None:
            raise DaedalusError(
                f"{type(self.envs[copy]).__name__} has no global state (env.state()); use critic: centralized "
                "(the group's observations) instead of critic: state."
            )
        return np.asarray(state, dtype=np.float32).reshape(-1)

    def _joint(self, name: str, obs: np.ndarray, final: bool = False) -> np.ndarray:
        """``[own | the copy's agents of the group (or its state) | one-hot]`` per row, for a centralized critic."""
        if name in self.state_groups:
            d, agents, _ = self.state_groups[name]
            own = np.asarray(obs, dtype=np.float32).reshape(len(obs), d)
            states = np.repeat(np.stack(self._final_state if final else self._state), agents, axis=0)
            one_hot = np.tile(np.eye(agents, dtype=np.float32), (len(obs) // agents, 1))
            return np.concatenate([own, states, one_hot], axis=1)
        if name not in self.centralized:
            return obs
        d, agents = self.centralized[name]
        own = np.asarray(obs, dtype=np.float32).reshape(len(obs), d)
        joint = np.repeat(own.reshape(-1, agents * d), agents, axis=0)
        one_hot = np.tile(np.eye(agents, dtype=np.float32), (len(obs) // agents, 1))
        return np.concatenate([own, joint, one_hot], axis=1)

    def action_masks(self, group: str) -> np.ndarray | None:
        """``(num_rows, n)`` bool masks for the current observations, or None if the env gives none.

        Rows that act at the next step carry the env's mask (True: legal); all other rows
        (absent agents, AEC agents not selected) are all True, so that a masked distribution
        stays finite there; their actions are ignored. Masks given in ``info["action_mask"]``
        rather than in the observation are known from the first :meth:`reset` on.
        A new array is made at every step, so a kept reference stays as it was.
        """
        self._group(group)
        return self._masks[group]

    def acting(self, group: str) -> np.ndarray:
        """``(num_rows,)`` bool: the rows whose agent acts at the next step (its ``valid``)."""
        self._group(group)
        return self._acting[group]

    def close(self) -> None:
        """Close every copy."""
        for env in self.envs:
            close = getattr(env, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------------ stepping

    def _group(self, name: str) -> _Group:
        try:
            return self._groups[name]
        except KeyError:
            raise DaedalusError(f"Unknown group '{name}'. Groups: {', '.join(self._groups)}.{did_you_mean(name, list(self._groups))}") from None

    def _check_actions(self, actions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [name for name in self._groups if name not in actions]
        if missing:
            raise DaedalusError(f"step() needs actions for every group; missing: {', '.join(missing)}.")
        checked = {}
        for name in self._groups:
            array = np.asarray(actions[name])
            if array.ndim == 0 or array.shape[0] != self.num_rows[name]:
                raise DaedalusError(f"actions of group '{name}' must have {self.num_rows[name]} rows, got shape {array.shape}.")
            checked[name] = array
        return checked

    def _new_outs(self) -> dict[str, _StepOut]:
        for name, group in self._groups.items():
            self._acting[name] = np.zeros(self.num_rows[name], dtype=bool)
            # Fresh arrays: a caller may keep the previous ones. Every copy's rows are rewritten.
            self._masks[name] = None if group.mask_size is None else np.ones((self.num_rows[name], group.mask_size), dtype=bool)
        return {name: _StepOut(group, self.num_rows[name]) for name, group in self._groups.items()}

    def _row(self, copy: int, agent: str) -> tuple[_Group, int]:
        try:
            group, k = self._slot[agent]
        except KeyError:
            raise DaedalusError(
                f"env copy {copy} has agent '{agent}', which is not in its possible_agents; "
                "the env must list every agent that can appear in possible_agents."
            ) from None
        return group, copy * len(group.agents) + k

    def _to_env_action(self, group: _Group, action: np.ndarray) -> Any:
        # A copy: the env may keep the action, and the caller may reuse its array.
        return int(action) if group.discrete_actions else np.array(action)

    def _write_obs(self, outs: dict[str, _StepOut], copy: int, agent: str, raw: Any) -> None:
        """Write a present agent's observation on its row."""
        group, row = self._row(copy, agent)
        out = outs[group.name]
        if raw is None:
            raise DaedalusError(f"env copy {copy} gave no observation for its present agent '{agent}'.")
        obs = raw["observation"] if group.dict_obs else raw
        if group.one_hot_offset is None:
            out.obs[row] = obs
        else:
            out.obs[row, : group.one_hot_offset] = obs
            out.obs[row, group.one_hot_offset + self._slot[agent][1]] = 1.0

    def _write_mask(self, copy: int, agent: str, raw: Any, info: Any) -> None:
        """Set the mask of an agent that acts at the next step (masks of others stay all True)."""
        group, row = self._row(copy, agent)
        self._acting[group.name][row] = True
        mask = raw.get("action_mask") if isinstance(raw, dict) else None
        if mask is None and isinstance(info, dict):
            mask = info.get("action_mask")
        if mask is None:
            return
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        masks = self._masks[group.name]
        if masks is None:  # first mask seen in infos: from now on this group has masks
            group.mask_size = mask.size
            masks = self._masks[group.name] = np.ones((self.num_rows[group.name], mask.size), dtype=bool)
        masks[row] = mask

    def _reset_copy(self, copy: int, outs: dict[str, _StepOut], seed: int | None) -> None:
        env = self.envs[copy]
        self._done[copy] = set()
        if self.is_aec:
            env.reset(seed=seed)
            if self._settle_aec(copy, outs, account=False):
                raise DaedalusError(f"env copy {copy} has no agent left to act right after reset().")
            return
        obs, infos = env.reset(seed=seed)
        self._present[copy] = list(env.agents)
        if not self._present[copy]:
            raise DaedalusError(f"env copy {copy} has no agents right after reset().")
        for agent in self._present[copy]:
            info = infos.get(agent) if isinstance(infos, dict) else None
            self._write_obs(outs, copy, agent, obs.get(agent))
            self._write_mask(copy, agent, obs.get(agent), info)

    def _step_parallel(self, copy: int, actions: dict[str, np.ndarray], outs: dict[str, _StepOut]) -> bool:
        env = self.envs[copy]
        acted = self._present[copy]
        env_actions = {}
        for agent in acted:
            group, row = self._row(copy, agent)
            env_actions[agent] = self._to_env_action(group, actions[group.name][row])
        obs, rewards, terminations, truncations, infos = env.step(env_actions)
        for agent in acted:
            group, row = self._row(copy, agent)
            out = outs[group.name]
            # Rounded to float32 first, as the stored reward is (and as the single-agent worker sums it).
            reward = float(np.float32(rewards.get(agent, 0.0)))
            out.valid[row] = True
            out.rewards[row] = reward
            self._agent_return[group.name][row] += reward
            self._agent_length[group.name][row] += 1
            self._team_return[copy] += reward
            terminated, truncated = bool(terminations.get(agent, False)), bool(truncations.get(agent, False))
            if terminated or truncated:
                out.terminated[row], out.truncated[row] = terminated, truncated
                final = obs.get(agent)
                out.final.append((row, None if final is None else self._as_row(group, agent, final)))
                self._done[copy].add(agent)
            elif agent not in env.agents:
                raise DaedalusError(
                    f"agent '{agent}' of env copy {copy} left env.agents without being terminated or truncated; "
                    "PettingZoo envs must set one of them when an agent leaves."
                )
        done = self._done[copy]
        self._present[copy] = [
            agent for agent in env.agents if agent not in done and not terminations.get(agent) and not truncations.get(agent)
        ]
        if not self._present[copy]:
            return True
        for agent in self._present[copy]:
            info = infos.get(agent) if isinstance(infos, dict) else None
            self._write_obs(outs, copy, agent, obs.get(agent))
            self._write_mask(copy, agent, obs.get(agent), info)
        return False

    def _step_aec(self, copy: int, actions: dict[str, np.ndarray], outs: dict[str, _StepOut]) -> bool:
        env = self.envs[copy]
        agent = env.agent_selection
        group, row = self._row(copy, agent)
        env.step(self._to_env_action(group, actions[group.name][row]))
        outs[group.name].valid[row] = True
        self._agent_length[group.name][row] += 1
        return self._settle_aec(copy, outs, account=True)

    def _settle_aec(self, copy: int, outs: dict[str, _StepOut], account: bool) -> bool:
        """After a turn (or a reset): finish dead agents, read the next agent's reward; True if the copy ended.

        Every ``last()`` reward is read exactly once: the selected agent's reward is read here
        and it acts at the next vector step, which zeroes its accumulated reward.
        """
        env = self.envs[copy]
        while env.agents:
            agent = env.agent_selection
            if not (env.terminations.get(agent) or env.truncations.get(agent)):
                break
            obs, reward, terminated, truncated, _ = env.last()
            group, row = self._row(copy, agent)
            out = outs[group.name]
            if account:
                self._add_reward(copy, group, row, reward, out)
                out.terminated[row], out.truncated[row] = bool(terminated), bool(truncated)
                out.final.append((row, self._as_row(group, agent, obs)))
            self._done[copy].add(agent)
            env.step(None)
        if not env.agents:
            return True
        agent = env.agent_selection
        obs, reward, _, _, info = env.last()
        group, row = self._row(copy, agent)
        if account:
            self._add_reward(copy, group, row, reward, outs[group.name])
        done = self._done[copy]
        self._present[copy] = [
            a for a in env.agents if a not in done and not env.terminations.get(a) and not env.truncations.get(a)
        ]
        for present in self._present[copy]:
            raw = obs if present == agent else env.observe(present)
            self._write_obs(outs, copy, present, raw)
        self._write_mask(copy, agent, obs, info)
        return False

    def _add_reward(self, copy: int, group: _Group, row: int, reward: float, out: _StepOut) -> None:
        reward = float(np.float32(reward))
        out.rewards[row] += reward
        self._agent_return[group.name][row] += reward
        self._team_return[copy] += reward

    def _as_row(self, group: _Group, agent: str, raw: Any) -> np.ndarray:
        """One observation as its row would hold it (the ``observation`` part, one-hot added)."""
        row = np.zeros(group.obs_shape, dtype=group.obs_dtype)
        obs = raw["observation"] if group.dict_obs else raw
        if group.one_hot_offset is None:
            row[...] = obs
        else:
            row[: group.one_hot_offset] = obs
            row[group.one_hot_offset + self._slot[agent][1]] = 1.0
        return row

    def _group_step(self, name: str, out: _StepOut, team_returns: np.ndarray, team_lengths: np.ndarray, ended_copies: np.ndarray) -> GroupStep:
        step = GroupStep(out.obs, out.rewards, out.terminated, out.truncated, out.obs, out.valid)
        step.team_returns, step.team_lengths, step.ended_copies = team_returns, team_lengths, ended_copies
        if not out.final:
            return step
        step.final_obs = out.obs.copy()
        for row, final in out.final:
            step.final_obs[row] = 0 if final is None else final
        rows = np.flatnonzero(out.terminated | out.truncated)
        step.episode_rows = rows
        step.episode_returns = self._agent_return[name][rows].copy()
        step.episode_lengths = self._agent_length[name][rows].copy()
        self._agent_return[name][rows] = 0.0
        self._agent_length[name][rows] = 0
        return step
