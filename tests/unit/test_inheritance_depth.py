"""At most one level of inheritance (STYLE.md): no Daedalus class has more than one concrete
Daedalus ancestor; Protocols (Agent, TensorAgent, the rollout contract) do not count."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import daedalus


def _is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


def concrete_ancestors(cls: type) -> list[str]:
    """Daedalus classes above ``cls`` that are not Protocols (exceptions and Enums excluded by the caller)."""
    return [
        base.__qualname__ for base in cls.__mro__[1:]
        if base.__module__.startswith("daedalus") and not _is_protocol(base)
    ]


def _daedalus_classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(daedalus.__path__, "daedalus."):
        if info.name.startswith("daedalus.cli") or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == info.name and not issubclass(obj, BaseException):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_no_class_is_more_than_one_level_below_a_protocol_or_base() -> None:
    deep = {f"{c.__module__}.{c.__qualname__}": concrete_ancestors(c) for c in _daedalus_classes() if len(concrete_ancestors(c)) > 1}
    assert deep == {}


def test_the_rule_catches_the_old_ppo_agent_chain() -> None:
    from daedalus.agents.base import TensorAgent

    class Middle(TensorAgent):  # a concrete agent ...
        pass

    class Old(Middle):  # ... and the PPOAgent -> ActorCriticAgent pattern below it
        pass

    Middle.__module__ = Old.__module__ = "daedalus.fake"
    assert concrete_ancestors(Old) == ["test_the_rule_catches_the_old_ppo_agent_chain.<locals>.Middle"]
    chain: Any = type("Deeper", (Old,), {})
    chain.__module__ = "daedalus.fake"
    assert len(concrete_ancestors(chain)) == 2
