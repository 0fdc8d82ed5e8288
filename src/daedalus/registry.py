"""Agents, environments and wrappers by id; ``pkg.mod:Obj`` / ``file.py:Obj`` references;
project modules listed in ``.daedalus.yaml``; plugins from installed packages.

Registries are small dicts filled by ``register_*`` calls. Built-in agents are listed
lazily (their modules import torch) and imported on first use. Every Gymnasium id works
without registration.

The registry sits low in the import layers (below ``envs``, see pyproject.toml): the agent
modules it finds are named by string and imported through importlib, and it only reads
``.daedalus.yaml`` (``daedalus module add|remove`` change it: :mod:`daedalus.api.project`).
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daedalus.errors import RegistryError, TrustError, UserCodeError, closest
from daedalus.specs import AgentSpec, EnvSpec, WrapperSpec

_AGENTS: dict[str, AgentSpec] = {}
_ENVS: dict[str, EnvSpec] = {}
_WRAPPERS: dict[str, WrapperSpec] = {}

#: Built-in agents: id -> (``module:attribute`` of their AgentSpec, one-line description).
BUILTIN_AGENTS: dict[str, tuple[str, str]] = {
    "random": ("daedalus.agents.random_agent:AGENT_SPEC", "Uniformly random actions (a baseline)"),
    "ppo": ("daedalus.algos.ppo:AGENT_SPEC", "Proximal Policy Optimization (clipped), MLP actor-critic"),
    "a2c": ("daedalus.algos.a2c:AGENT_SPEC", "Advantage Actor-Critic (synchronous A3C), MLP actor-critic"),
    "dqn": ("daedalus.algos.dqn:AGENT_SPEC", "Deep Q-Network (optionally Double DQN, n-step), MLP Q-network, replay buffer"),
    "sac": ("daedalus.algos.sac:AGENT_SPEC", "Soft Actor-Critic: twin Q, automatic entropy tuning, squashed Gaussian policy"),
    "td3": ("daedalus.algos.td3:AGENT_SPEC", "Twin Delayed DDPG: twin Q, target policy smoothing, delayed actor"),
    "bc": ("daedalus.algos.bc:AGENT_SPEC", "Behaviour cloning from demonstrations (log-likelihood, entropy and L2 terms)"),
    "dagger": ("daedalus.algos.dagger:AGENT_SPEC", "DAgger: behaviour cloning on states the learner visits, labelled by an expert run"),
    "gail": ("daedalus.algos.gail:AGENT_SPEC", "GAIL: a discriminator on (s, a) gives the reward of a PPO generator"),
    "airl": ("daedalus.algos.airl:AGENT_SPEC", "AIRL: a shaped reward g(s) + potential h gives the reward of a PPO generator"),
}

#: Turns a stepwise class (Gym Loop's act/memorize/update) into an AgentSpec, for references.
#: Named by string and imported on first use, like the modules of BUILTIN_AGENTS: the registry
#: sits below the agents it finds (see the import-linter layers in pyproject.toml), so it reaches
#: them by name only, never with an import statement, and importing it stays cheap.
STEPWISE_ADAPTER = "daedalus.agents.stepwise:step_agent_spec"

#: Stable-Baselines3 algorithms named by class: ``sb3:PPO``, ``sb3_contrib:TQC`` (prefix -> package).
#: These are ids, not references: the package is imported by its fixed name and the class is
#: looked up among its exported algorithms, never imported by a name from the profile.
SB3_PREFIXES: dict[str, str] = {"sb3": "stable_baselines3", "sb3_contrib": "sb3_contrib"}
#: Builds the AgentSpec of an SB3 algorithm; named by string like STEPWISE_ADAPTER.
SB3_ADAPTER = "daedalus.agents.sb3:sb3_agent_spec"
#: Lists an installed SB3 package's algorithms as ``{id: description}``; named by string likewise.
SB3_LISTING = "daedalus.agents.sb3:sb3_agent_ids"

#: Entry-point group: installed packages list modules that call ``register_*`` on import.
PLUGIN_GROUP = "daedalus.plugins"
PROJECT_FILE = ".daedalus.yaml"


def register_agent(
    agent_id: str,
    agent_factory: Callable[..., Any],
    training_wrapper: Callable[..., Any] | None = None,
    description: str = "",
    config_class: type | None = None,
) -> AgentSpec:
    """Register an agent under ``agent_id`` (Crete's contract).

    ``agent_factory`` is called with keyword arguments picked by its parameter names
    (see :class:`daedalus.specs.AgentSpec`); ``training_wrapper(env_factory, agent, config,
    artifacts, save_callback[, context])`` trains it. Registering an id again replaces it.
    """
    if not isinstance(agent_id, str) or not agent_id:
        raise RegistryError(f"register_agent: agent_id must be a non-empty string, got {agent_id!r}.")
    if not callable(agent_factory):
        raise RegistryError(f"register_agent('{agent_id}'): agent_factory must be callable.")
    if training_wrapper is not None and not callable(training_wrapper):
        raise RegistryError(f"register_agent('{agent_id}'): training_wrapper must be callable.")
    description = description or _first_line(getattr(training_wrapper, "__doc__", None))
    spec = AgentSpec(agent_id, agent_factory, training_wrapper, description, config_class)
    _AGENTS[agent_id] = spec
    return spec


def register_env(env_id: str, factory: Callable[..., Any], description: str = "") -> EnvSpec:
    """Register an environment: ``factory(**env_args)`` returns a Gymnasium-API env."""
    if not callable(factory):
        raise RegistryError(f"register_env('{env_id}'): the factory must be callable.")
    spec = EnvSpec(env_id, factory, description or _first_line(getattr(factory, "__doc__", None)))
    _ENVS[env_id] = spec
    return spec


def register_wrapper(wrapper_id: str, wrapper: Callable[..., Any], description: str = "") -> WrapperSpec:
    """Register a wrapper: ``wrapper(env, **args)`` returns the wrapped env."""
    if not callable(wrapper):
        raise RegistryError(f"register_wrapper('{wrapper_id}'): the wrapper must be callable.")
    spec = WrapperSpec(wrapper_id, wrapper, description or _first_line(getattr(wrapper, "__doc__", None)))
    _WRAPPERS[wrapper_id] = spec
    return spec


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""


# --------------------------------------------------------------------------- trust


@dataclass(frozen=True)
class _Untrusted:
    """What may be imported while data made elsewhere (a run folder) is being loaded."""

    what: str  # e.g. "run folder runs/x", for messages
    project_modules: tuple[str, ...]


_UNTRUSTED: contextvars.ContextVar[_Untrusted | None] = contextvars.ContextVar("daedalus_untrusted", default=None)
TRUST_FIX = (
    "If you trust whoever made it, pass --trust-code (trust_code=True in Python); or make the code "
    "part of your project ('daedalus module add MODULE' in your project folder) and refer to it by "
    "module name. See docs/security.md."
)


@contextmanager
def untrusted_source(what: str) -> Iterator[None]:
    """Inside this block, references resolve only to what the user already trusts.

    That is: built-in agents, envs and wrappers, ids registered by the current project's
    modules or installed plugins, Gymnasium ids and ``gymnasium.wrappers`` classes, and
    ``pkg.mod:Obj`` references into the current project's modules (those listed in the
    ``.daedalus.yaml`` found from the working directory). Anything else (``file.py:Obj``,
    other modules, Gymnasium's ``module:Env-v0`` form naming another module) raises
    :class:`~daedalus.errors.TrustError` before it is imported.
    """
    project_file = find_project_file()
    modules = tuple(read_project_modules(project_file)) if project_file is not None else ()
    token = _UNTRUSTED.set(_Untrusted(what, modules))
    try:
        yield
    finally:
        _UNTRUSTED.reset(token)


def _in_project(module_name: str, project_modules: tuple[str, ...]) -> bool:
    """A listed module, a submodule of one, or a module of the same top-level package."""
    top = module_name.split(".")[0]
    return any(
        module_name == m or module_name.startswith(m + ".") or top == m.split(".")[0]
        for m in project_modules
    )


#: Environment packages trusted like Gymnasium ids (the ``daedalus[ma]`` extra): a run folder may
#: name their envs (``mpe2:simple_spread_v3``, ``pettingzoo.classic:tictactoe_v3``).
TRUSTED_ENV_PACKAGES = ("pettingzoo", "mpe2")


def _refuse_untrusted(ref: str, module_part: str) -> None:
    policy = _UNTRUSTED.get()
    if policy is None:
        return
    if module_part.split(".")[0] in TRUSTED_ENV_PACKAGES:
        return
    if module_part.endswith(".py"):
        reason = f"it names the file '{module_part}', which would be imported and run"
    elif _in_project(module_part, policy.project_modules):
        return
    else:
        listed = ", ".join(policy.project_modules) or "none"
        reason = (
            f"module '{module_part}' is not one of the current project's modules (listed in "
            f".daedalus.yaml from the working directory: {listed})"
        )
    raise TrustError(f"{policy.what} refers to '{ref}': {reason}. Nothing was imported. {TRUST_FIX}")


def check_ref_target(ref: str, module: Any, obj: Any) -> None:
    """A reference must name a class or function defined in the module it names.

    Re-exports (``os:system``, whose function lives in ``posix``) and plain values are
    refused, so that a profile cannot call an arbitrary callable that happens to be
    importable through some module.
    """
    from daedalus.specs import AgentSpec, EnvSpec, WrapperSpec

    if isinstance(obj, AgentSpec | EnvSpec | WrapperSpec):
        return
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        raise RegistryError(
            f"reference '{ref}' names {type(obj).__name__} object, not a class or function. Point it at "
            "the class or function itself (defined with 'class' or 'def' in that module)."
        )
    defined_in = getattr(obj, "__module__", None) or ""
    name = module.__name__
    if defined_in != name:
        raise RegistryError(
            f"reference '{ref}' names '{obj.__qualname__}', which is defined in '{defined_in}', not in "
            f"'{name}'. References must name a class or function defined in the module they name: write "
            f"'{defined_in}:{obj.__qualname__}' if that is what you mean."
        )


def _is_stdlib(module_part: str) -> bool:
    return module_part.split(".")[0] in sys.stdlib_module_names


# --------------------------------------------------------------------------- references


def is_ref(text: str) -> bool:
    """Whether ``text`` is a ``pkg.mod:Obj`` or ``path/file.py:Obj`` reference (``sb3:PPO`` is an id, not one)."""
    return ":" in text and not text.startswith(":") and not text.endswith(":") and not is_sb3_id(text)


def is_sb3_id(text: str) -> bool:
    """Whether ``text`` names a Stable-Baselines3 algorithm: ``sb3:NAME`` or ``sb3_contrib:NAME``."""
    prefix, sep, name = text.partition(":")
    return bool(sep) and prefix in SB3_PREFIXES and name.isidentifier()


def resolve_ref(ref: str, base_dir: Path | None = None) -> Any:
    """Import the object named by ``pkg.mod:Obj`` or ``path/to/file.py:Obj``.

    Relative file paths are tried against ``base_dir`` (the profile's folder) and then the
    working directory. Errors raised by the user's module are reported with their frames.
    """
    module_part, _, attr = ref.rpartition(":")
    if not module_part or not attr:
        raise RegistryError(
            f"'{ref}' is not a reference. Write 'package.module:Name' or 'path/to/file.py:Name'."
        )
    _refuse_untrusted(ref, module_part)
    if not module_part.endswith(".py") and _is_stdlib(module_part):
        raise RegistryError(
            f"reference '{ref}' names the standard-library module '{module_part}', which holds no agents, "
            "environments or wrappers. Point it at your own code ('my_package.module:Name' or "
            "'path/to/file.py:Name')."
        )
    module, obj = _import_ref(ref, module_part, attr, base_dir)
    check_ref_target(ref, module, obj)
    return obj


def _import_ref(ref: str, module_part: str, attr: str, base_dir: Path | None) -> tuple[Any, Any]:
    """Import the module of a reference; return it and the named attribute (no checks)."""
    if module_part.endswith(".py"):
        module = _import_file(module_part, base_dir, ref)
    else:
        module = import_user_module(module_part, what=f"reference '{ref}'")
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(module) if not n.startswith("_")]
            hint = closest(part, names, n=1)
            raise RegistryError(
                f"reference '{ref}': module '{module.__name__}' has no attribute '{part}'."
                + (f" Did you mean '{hint[0]}'?" if hint else "")
            ) from None
    return module, obj


def _import_file(file_part: str, base_dir: Path | None, ref: str) -> Any:
    candidates = [Path(file_part).expanduser()]
    if not candidates[0].is_absolute():
        candidates = [(base_dir or Path.cwd()) / file_part, Path.cwd() / file_part]
    path = next((c.resolve() for c in candidates if c.is_file()), None)
    if path is None:
        tried = ", ".join(str(c) for c in candidates)
        raise RegistryError(f"reference '{ref}': file '{file_part}' not found (looked at {tried}).")
    name = "daedalus_user_" + "_".join(path.with_suffix("").parts[-3:]).replace("-", "_").replace(".", "_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RegistryError(f"reference '{ref}': cannot import '{path}'.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # The file's own folder goes on sys.path so that it can import its neighbours.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserCodeError(_user_error(f"file '{path}'", exc)) from None
    return module


def import_user_module(name: str, what: str | None = None) -> Any:
    """Import a user module; an exception inside it becomes a UserCodeError with the user's frames."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            listed = what is not None and "listed in" in what
            raise RegistryError(
                f"{what or 'module'}: no module named '{name}'. Check the spelling and that the project "
                "folder is the working directory (or on PYTHONPATH)"
                + (f", or remove it with 'daedalus module remove {name}'." if listed else ".")
            ) from None
        raise UserCodeError(_user_error(f"module '{name}'", exc)) from None
    except Exception as exc:
        raise UserCodeError(_user_error(f"module '{name}'", exc)) from None


def _user_error(where: str, exc: BaseException) -> str:
    """A message with the user's own frames only (not Daedalus's, not importlib's)."""
    ours = str(Path(__file__).parent)  # the daedalus package
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(ours) and "importlib" not in f.filename and not f.filename.startswith("<frozen")
    ]
    trace = "".join(traceback.format_list(frames)).rstrip()
    body = f"\n{trace}" if trace else ""
    return (
        f"Importing {where} raised {type(exc).__name__}: {exc}.{body}\n"
        "Fix the error in that code (the frames above are yours), then run the command again."
    )


# --------------------------------------------------------------------------- lookups


def get_agent(agent_id: str, base_dir: Path | None = None) -> AgentSpec:
    """The AgentSpec for a registered id, a built-in id, an entry point, or a reference."""
    if agent_id in _AGENTS:
        return _AGENTS[agent_id]
    if agent_id in BUILTIN_AGENTS:
        module_part, _, attr = BUILTIN_AGENTS[agent_id][0].partition(":")
        _, spec = _import_ref(agent_id, module_part, attr, None)
        _AGENTS[agent_id] = spec
        return spec
    if is_sb3_id(agent_id):
        # Built in like ppo: the package and the class come from fixed lists, so a run folder
        # naming sb3:PPO loads without --trust-code. A missing package is a MissingDependencyError.
        module_part, _, attr = SB3_ADAPTER.partition(":")
        return getattr(importlib.import_module(module_part), attr)(agent_id)
    if is_ref(agent_id):
        return agent_spec_from_object(resolve_ref(agent_id, base_dir), agent_id)
    known = sorted(set(_AGENTS) | set(BUILTIN_AGENTS))
    hint = closest(agent_id, known, n=3)
    raise RegistryError(
        f"unknown agent '{agent_id}'."
        + (f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else "")
        + f" Known agents: {', '.join(known)}. Register your own with register_agent() in a module "
        "added by 'daedalus module add', or reference one as 'pkg.mod:Class' / 'file.py:Class'."
    )


def agent_spec_from_object(obj: Any, ref: str) -> AgentSpec:
    """Turn what a reference points at into an AgentSpec.

    Accepted: an AgentSpec, or a StepAgent subclass or a class with Gym Loop's
    get_default_parameters/act/memorize/update (run in the built-in loop).
    """
    if isinstance(obj, AgentSpec):
        return obj
    module_part, _, attr = STEPWISE_ADAPTER.partition(":")
    step_agent_spec = getattr(importlib.import_module(module_part), attr)
    spec = step_agent_spec(obj, ref)
    if spec is not None:
        return spec
    raise RegistryError(
        f"reference '{ref}' points at {obj!r}, which is not an agent. Point it at an AgentSpec "
        "(the value register_agent() returns), at a StepAgent subclass, or at a class with "
        "get_default_parameters/act/memorize/update."
    )


def env_registered(env_id: str) -> bool:
    """Whether ``env_id`` was registered with :func:`register_env`."""
    return env_id in _ENVS


def get_env_factory(env_id: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """A callable ``factory(**env_args) -> env`` for a registered id, a reference or a Gymnasium id."""
    if env_id in _ENVS:
        return _ENVS[env_id].factory
    if is_ref(env_id) and not _is_gym_id(env_id):
        obj = resolve_ref(env_id, base_dir)
        if not callable(obj):
            raise RegistryError(f"environment reference '{env_id}' is not callable.")
        return obj
    if _is_gym_id(env_id):
        import gymnasium

        return lambda **kwargs: gymnasium.make(env_id, **kwargs)
    known_gym = gym_env_ids()
    hint = closest(env_id, list(_ENVS) + known_gym, n=3)
    raise RegistryError(
        f"unknown environment '{env_id}'."
        + (f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else "")
        + " Use a Gymnasium id ('daedalus list envs' shows them), an id registered with "
        "register_env(), or a reference 'pkg.mod:make_env'."
    )


def _is_gym_id(env_id: str) -> bool:
    import gymnasium

    if env_id in gymnasium.registry:
        return True
    if ":" in env_id:
        # Gymnasium's own "module:EnvName-v0" form imports the module to register the env:
        # that import is code too, so it obeys the same trust rules as a reference.
        module_part = env_id.partition(":")[0]
        policy = _UNTRUSTED.get()
        if policy is not None and not _in_project(module_part, policy.project_modules):
            return False
        if _is_stdlib(module_part):
            return False
        try:
            gymnasium.spec(env_id)
            return True
        except Exception:
            return False
    return False


def gym_env_ids() -> list[str]:
    """Every id in Gymnasium's registry."""
    import gymnasium

    return sorted(gymnasium.registry)


def get_wrapper(wrapper_id: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """A wrapper callable for a registered id, a reference or a ``gymnasium.wrappers`` class name."""
    if wrapper_id in _WRAPPERS:
        return _WRAPPERS[wrapper_id].wrapper
    if is_ref(wrapper_id):
        obj = resolve_ref(wrapper_id, base_dir)
        if not callable(obj):
            raise RegistryError(f"wrapper reference '{wrapper_id}' is not callable.")
        return obj
    import gymnasium.wrappers

    builtin = getattr(gymnasium.wrappers, wrapper_id, None)
    if isinstance(builtin, type):
        return builtin
    names = list(_WRAPPERS) + [n for n in dir(gymnasium.wrappers) if n[:1].isupper()]
    hint = closest(wrapper_id, names, n=3)
    raise RegistryError(
        f"unknown wrapper '{wrapper_id}'."
        + (f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else "")
        + " Use a gymnasium.wrappers class name (e.g. 'TimeLimit'), an id registered with "
        "register_wrapper(), or a reference 'pkg.mod:MyWrapper'."
    )


def list_agents() -> dict[str, str]:
    """Agent ids with one-line descriptions (built-ins are not imported)."""
    out = {k: v[1] for k, v in BUILTIN_AGENTS.items()}
    out.update({k: v.description for k, v in _AGENTS.items()})
    out.update(_sb3_agent_ids())
    return dict(sorted(out.items()))


def _sb3_agent_ids() -> dict[str, str]:
    """``sb3:PPO``, ``sb3_contrib:TQC``, ... for the SB3 packages installed (importing them: ~1 s),
    one hint row for each one that is not."""
    import importlib.util

    out: dict[str, str] = {}
    for prefix, package in SB3_PREFIXES.items():
        if importlib.util.find_spec(package) is None:
            out[f"{prefix}:NAME"] = f"{package} algorithms by class name (not installed: pip install 'daedalus[sb3]')"
            continue
        module_part, _, attr = SB3_LISTING.partition(":")
        out.update(getattr(importlib.import_module(module_part), attr)(prefix))
    return out


def list_envs() -> dict[str, str]:
    """Registered environments and every Gymnasium id, with descriptions."""
    import gymnasium

    out: dict[str, str] = {}
    for env_id, env_spec in gymnasium.registry.items():
        entry = env_spec.entry_point
        out[env_id] = f"Gymnasium ({entry if isinstance(entry, str) else getattr(entry, '__name__', '')})"
    out.update({k: v.description or "registered" for k, v in _ENVS.items()})
    return dict(sorted(out.items()))


def list_wrappers() -> dict[str, str]:
    """Registered wrappers and the classes of ``gymnasium.wrappers``."""
    import gymnasium.wrappers

    out: dict[str, str] = {}
    for name in dir(gymnasium.wrappers):
        obj = getattr(gymnasium.wrappers, name)
        if name[:1].isupper() and isinstance(obj, type):
            out[name] = "Gymnasium: " + _first_line(obj.__doc__)
    out.update({k: v.description or "registered" for k, v in _WRAPPERS.items()})
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- project modules


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``.daedalus.yaml`` walking up from ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def read_project_modules(project_file: Path) -> list[str]:
    """The module names listed in a project file."""
    from daedalus.errors import ProfileError
    from daedalus.safe_yaml import read_yaml_file

    try:
        data = read_yaml_file(project_file, kind="project file")[0] or {}
    except ProfileError as exc:
        raise RegistryError(f"{exc} Fix or delete the file.") from None
    modules = data.get("modules") or [] if isinstance(data, dict) else None
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise RegistryError(f"{project_file}: 'modules' must be a list of module names. Fix or delete the file.")
    return list(modules)


def add_project_path(project_file: Path) -> None:
    """Put the folder of ``project_file`` on ``sys.path``, so that the modules it lists import."""
    folder = str(project_file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


_LOADED: set[str] = set()


def load_project_modules(start: Path | None = None) -> list[str]:
    """Import plugin entry points and the modules of the nearest ``.daedalus.yaml``.

    Each project file (and the plugins) is loaded once per process; returns what was
    imported by this call.
    """
    loaded = []
    if "<plugins>" not in _LOADED:
        _LOADED.add("<plugins>")
        from importlib.metadata import entry_points

        for ep in entry_points(group=PLUGIN_GROUP):
            import_user_module(ep.value.partition(":")[0], what=f"plugin '{ep.name}'")
            loaded.append(ep.value)
    project_file = find_project_file(start)
    if project_file is not None and str(project_file) not in _LOADED:
        _LOADED.add(str(project_file))
        add_project_path(project_file)
        for name in read_project_modules(project_file):
            import_user_module(name, what=f"module '{name}' listed in {project_file}")
            loaded.append(name)
    return loaded
