"""Registry: ids, built-ins, both reference forms, project modules and user-code errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from daedalus import api, registry
from daedalus.errors import RegistryError, UserCodeError
from daedalus.specs import AgentSpec
from tests.conftest import write


def test_register_and_get_agent() -> None:
    spec = registry.register_agent("unit-agent", lambda: None, lambda *a: None, "a test agent")
    assert registry.get_agent("unit-agent") is spec
    assert registry.list_agents()["unit-agent"] == "a test agent"
    assert "ppo" in registry.list_agents() and "random" in registry.list_agents()


def test_builtin_random_is_lazy_and_resolves() -> None:
    spec = registry.get_agent("random")
    assert isinstance(spec, AgentSpec) and spec.agent_id == "random"


def test_unknown_agent_lists_known_ids() -> None:
    with pytest.raises(RegistryError, match=r"unknown agent 'rando'\. Did you mean 'random'\?.*Known agents: .*ppo.*random"):
        registry.get_agent("rando")


def test_file_reference_and_module_reference(workdir: Path) -> None:
    write(workdir / "my_agents.py", """
        from daedalus import register_agent
        SPEC = register_agent("file-agent", lambda: 1, lambda *a: None)
        def make_env(size=3):
            return ("env", size)
    """)
    assert registry.resolve_ref("my_agents.py:SPEC").agent_id == "file-agent"
    sub = workdir / "sub"
    sub.mkdir()
    assert registry.get_agent("../my_agents.py:SPEC", base_dir=sub).agent_id == "file-agent"
    sys.path.insert(0, str(workdir))
    try:
        assert registry.resolve_ref("my_agents:make_env")(size=5) == ("env", 5)
        assert registry.get_env_factory("my_agents:make_env")() == ("env", 3)
    finally:
        sys.path.remove(str(workdir))


def test_reference_errors(workdir: Path) -> None:
    write(workdir / "mod_x.py", "VALUE = 1\ndef helper(): ...\n")
    with pytest.raises(RegistryError, match=r"has no attribute 'VALEU'\. Did you mean 'VALUE'\?"):
        registry.resolve_ref("mod_x.py:VALEU")
    with pytest.raises(RegistryError, match="file 'nope.py' not found"):
        registry.resolve_ref("nope.py:X")
    with pytest.raises(RegistryError, match="no module named 'no_such_pkg_xyz.mod'"):
        registry.resolve_ref("no_such_pkg_xyz.mod:X")
    with pytest.raises(RegistryError, match="names int object, not a class or function"):
        registry.get_agent("mod_x.py:VALUE")
    with pytest.raises(RegistryError, match="not an agent"):
        registry.get_agent("mod_x.py:helper")


def test_user_code_error_shows_user_frames(workdir: Path) -> None:
    write(workdir / "broken.py", """
        def helper():
            raise ValueError("bad constant")
        helper()
    """)
    with pytest.raises(UserCodeError) as info:
        registry.resolve_ref("broken.py:X")
    message = str(info.value)
    assert "ValueError: bad constant" in message
    assert "broken.py\", line 2" in message and "broken.py\", line 3" in message
    assert "registry.py" not in message and "importlib" not in message


def test_envs_and_wrappers() -> None:
    factory = registry.get_env_factory("CartPole-v1")
    env = factory()
    assert env.observation_space.shape == (4,)
    wrapped = registry.get_wrapper("TimeLimit")(env, max_episode_steps=3)
    wrapped.reset(seed=0)
    steps = 0
    truncated = terminated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = wrapped.step(0 if steps % 2 else 1)
        steps += 1
    assert steps == 3 and truncated
    with pytest.raises(RegistryError, match=r"unknown environment 'CartPole-v9'\. Did you mean .*'CartPole-v1'"):
        registry.get_env_factory("CartPole-v9")
    with pytest.raises(RegistryError, match=r"unknown wrapper 'TimeLimitt'\. Did you mean .*'TimeLimit'"):
        registry.get_wrapper("TimeLimitt")
    registry.register_env("unit-env", lambda **kw: kw, "my env")
    assert registry.get_env_factory("unit-env")(a=1) == {"a": 1}
    assert registry.list_envs()["unit-env"] == "my env"
    assert "CartPole-v1" in registry.list_envs()
    registry.register_wrapper("unit-wrap", lambda env, k=1: (env, k))
    assert registry.get_wrapper("unit-wrap")("e", k=2) == ("e", 2)
    assert "TimeLimit" in registry.list_wrappers()


def test_project_modules(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir / "proj_mod_a.py", "from daedalus import register_agent\nregister_agent('proj-a', lambda: 1, lambda *a: None)\n")
    project = api.add_module("proj_mod_a")
    assert project == workdir / ".daedalus.yaml"
    assert registry.read_project_modules(project) == ["proj_mod_a"]
    nested = workdir / "deep" / "er"
    nested.mkdir(parents=True)
    assert registry.find_project_file(nested) == project
    monkeypatch.setattr(registry, "_LOADED", set())
    monkeypatch.chdir(nested)
    assert registry.load_project_modules() == ["proj_mod_a"]
    assert api.project_modules(nested) == (project, ["proj_mod_a"])
    api.remove_module("proj_mod_a")
    assert registry.read_project_modules(project) == []
    with pytest.raises(RegistryError, match="is not listed"):
        api.remove_module("proj_mod_a")
    with pytest.raises(RegistryError, match="no module named 'not_a_module_qq'"):
        api.add_module("not_a_module_qq")


def test_list_agents_names_the_installed_sb3_algorithms_and_hints_the_missing_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = registry.list_agents()
    assert listed["sb3:PPO"].startswith("Stable-Baselines3 PPO: Proximal Policy Optimization")
    assert listed["sb3_contrib:TQC"].startswith("SB3-Contrib TQC")
    assert "sb3:BaseAlgorithm" not in listed and "sb3:NAME" not in listed
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sb3_contrib" else real(name, *a))
    listed = registry.list_agents()
    assert "sb3_contrib:TQC" not in listed and "sb3:PPO" in listed
    assert listed["sb3_contrib:NAME"] == "sb3_contrib algorithms by class name (not installed: pip install 'daedalus[sb3]')"
