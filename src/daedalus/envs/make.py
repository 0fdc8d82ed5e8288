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

    The factory and every wrapper are resolved now, so that a bad id fails before training.
    Seeding resets the env once with ``seed`` and seeds its action space; later ``reset()``
    calls continue that random stream. Called without an argument, the env is seeded with
    the profile's seed; ``make_env(None)`` leaves it unseeded.
    """
    base = profile.base_dir
    factory = get_env_factory(profile.env_id, base)
    wrappers = [(w.ref, get_wrapper(w.ref, base), w.args) for w in profile.wrappers]
    env_args = {**profile.env_args, **extra_env_args}

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
        if seed is not None:
            env.reset(seed=seed)
            env.action_space.seed(seed)
        return env

    return make_env
