"""Build one environment (with the profile's wrappers) from a profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daedalus.errors import DaedalusError, RegistryError
from daedalus.registry import get_env_factory, get_wrapper

if TYPE_CHECKING:
    import gymnasium as gym

    from daedalus.config import Profile


class _ProfileSeed:
    """Default of ``make_env``'s seed: the profile's seed."""


_PROFILE_SEED = _ProfileSeed()


def env_factory_for(
    profile: Profile, flatten_observations: bool = False, **extra_env_args: Any
) -> Callable[[int | None], gym.Env]:
    """``make_env(seed)`` for a profile: a fresh env with wrappers applied.

    ``flatten_observations`` adds Gymnasium's ``FlattenObservation`` after the profile's
    wrappers (Dict and Tuple observations for agents that take one vector).

    A profile with ``policies`` or ``policy_mapping`` trains several policies on a multi-agent
    env; a Gymnasium env there is the one-agent case: the env, wrappers applied and seeded, is
    wrapped in :class:`~daedalus.envs.pettingzoo.GymnasiumAsParallel` (one agent, ``agent_0``).

    The factory and every wrapper are resolved now, so that a bad id fails before training.
    Seeding resets the env once with ``seed`` and seeds its action space; later ``reset()``
    calls continue that random stream. Called without an argument, the env is seeded with
    the profile's seed; ``make_env(None)`` leaves it unseeded.
    """
    base = profile.base_dir
    pettingzoo = _pettingzoo_factory(profile)
    if pettingzoo is not None and profile.wrappers:
        raise RegistryError(
            f"'{profile.env_id}' is a PettingZoo environment; wrappers apply to Gymnasium environments only. "
            "Remove 'wrappers' (or wrap the env in your own pkg.mod:make_env)."
        )
    factory = pettingzoo or get_env_factory(profile.env_id, base)
    wrappers = [(w.ref, get_wrapper(w.ref, base), w.args) for w in profile.wrappers]
    env_args = {**profile.env_args, **extra_env_args}
    one_agent = pettingzoo is None and bool(profile.policies or profile.policy_mapping)

    def make_env(seed: int | None | _ProfileSeed = _PROFILE_SEED) -> gym.Env:
        if isinstance(seed, _ProfileSeed):
            seed = profile.seed
        try:
            env = factory(**env_args)
        except DaedalusError:
            raise
        except TypeError as exc:
            raise RegistryError(
                f"environment '{profile.env_id}' rejected env_args {env_args}: {exc}. "
                "Fix env_args in the profile."
            ) from None
        for ref, wrapper, args in wrappers:
            try:
                env = wrapper(env, **args)
            except TypeError as exc:
                raise RegistryError(f"wrapper '{ref}' rejected args {args}: {exc}. Fix its args in the profile.") from None
        if flatten_observations:
            from gymnasium.wrappers import FlattenObservation

            env = FlattenObservation(env)
        if seed is not None and pettingzoo is None and not _is_pettingzoo(env):
            # (PettingZoo copies, also from a user's make_env, are seeded by their first reset.)
            env.reset(seed=seed)
            env.action_space.seed(seed)
        if one_agent and _is_single_agent_gymnasium(env):
            from daedalus.envs.pettingzoo import GymnasiumAsParallel

            return GymnasiumAsParallel(env)  # type: ignore[return-value]
        return env

    return make_env


def _pettingzoo_factory(profile: Profile) -> Callable[..., Any] | None:
    """``factory(**env_args)`` when ``env_id`` names a PettingZoo env module (``mpe2:simple_spread_v3``)."""
    from types import ModuleType

    from daedalus.registry import TRUSTED_ENV_PACKAGES, env_registered, is_ref, resolve_ref

    env_id = profile.env_id
    if env_registered(env_id) or not is_ref(env_id) or env_id.rpartition(":")[0].endswith(".py"):
        return None
    module = env_id.partition(":")[0]
    if module.split(".")[0] not in TRUSTED_ENV_PACKAGES:
        try:
            obj = resolve_ref(env_id, profile.base_dir)  # the trust rules apply (a TrustError goes up)
        except RegistryError:
            return None
        if not (isinstance(obj, ModuleType) and (hasattr(obj, "parallel_env") or hasattr(obj, "env"))):
            return None
    # PettingZoo's and MPE2's own envs are built by make_pettingzoo (through PettingZoo's registry
    # where it has one): nothing is imported here.

    def factory(**env_args: Any) -> Any:
        from daedalus.envs.pettingzoo import make_pettingzoo

        return make_pettingzoo(env_id, env_args)

    return factory


def _is_pettingzoo(env: Any) -> bool:
    from daedalus.envs.pettingzoo import is_pettingzoo

    return is_pettingzoo(env)


def _is_single_agent_gymnasium(env: Any) -> bool:
    """A Gymnasium env that is neither a PettingZoo env nor an array multi-agent env."""
    import gymnasium as gym

    from daedalus.envs.pettingzoo import is_pettingzoo
    from daedalus.envs.vector import is_multi_agent

    return isinstance(env, gym.Env) and not is_multi_agent(env) and not is_pettingzoo(env)
