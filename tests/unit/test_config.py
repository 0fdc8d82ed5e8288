"""Profiles: defaults merge, overrides, ProfileConfig access and every validation message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from daedalus.config import ProfileConfig, build_config, load_profiles, parse_override
from daedalus.errors import ProfileError
from tests.conftest import write

BASIC = """
defaults:
  batch_size: 32
  net: {hidden: [64, 64], act: tanh}
first:
  agent_id: random
  env_id: CartPole-v1
  config:
    batch_size: 128
    net: {act: relu}
second:
  agent_id: random
  env_id: CartPole-v1
  num_envs: 4
  seed: null
"""


def test_defaults_merge_under_each_profile(tmp_path: Path) -> None:
    first, second = load_profiles(write(tmp_path / "p.yaml", BASIC))
    assert first.config == {"batch_size": 128, "net": {"hidden": [64, 64], "act": "relu"}}
    assert second.config == {"batch_size": 32, "net": {"hidden": [64, 64], "act": "tanh"}}
    assert (second.num_envs, second.seed, second.vectorization) == (4, None, "auto")
    assert first.where("config", "batch_size") == f"{tmp_path / 'p.yaml'}:8"


def test_select_profiles_and_unknown_id(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", BASIC)
    assert [p.profile_id for p in load_profiles(path, ["second"])] == ["second"]
    with pytest.raises(ProfileError, match=r"no profile 'secnd'\. Did you mean 'second'\?"):
        load_profiles(path, ["secnd"])


def test_overrides_dotted_and_shorthand(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", BASIC)
    (first,) = load_profiles(
        path, ["first"], ["config.net.act=elu", "batch_size=7", "num_envs=2", "config.lr=1e-3"]
    )
    assert first.config["net"] == {"hidden": [64, 64], "act": "elu"}
    assert first.config["batch_size"] == 7
    assert first.config["lr"] == "1e-3"  # YAML 1.1 reads this as a string; typed configs coerce it
    assert first.num_envs == 2
    assert parse_override("config.hidden=[32, 32]") == (["config", "hidden"], [32, 32])
    with pytest.raises(ProfileError, match="expected KEY=VALUE"):
        parse_override("no_equals_sign")


def test_profile_config_access() -> None:
    config = ProfileConfig({"batch_size": 32, "net": {"hidden": [64]}})
    assert config.batch_size == 32 and config["batch_size"] == 32
    assert config.get("missing", 3) == 3
    assert config.net.hidden == [64]
    with pytest.raises(AttributeError, match="Did you mean 'batch_size'"):
        _ = config.batch_sise
    with pytest.raises(AttributeError, match="read-only"):
        config.batch_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p:\n  agnet_id: random\n  env_id: CartPole-v1\n", r"p\.yaml:2: profile 'p': unknown key 'agnet_id'\. Did you mean 'agent_id'\?"),
        ("p:\n  env_id: CartPole-v1\n", r"p\.yaml:1: profile 'p': 'agent_id' is missing\. Add 'agent_id: \.\.\.'"),
        ("p:\n  agent_id: random\n  env_id: CartPole-v1\n  num_envs: four\n", r"p\.yaml:4: .*'num_envs' must be an integer from 1 to 4096, got 'four' \(str\)\. Write e\.g\. 'num_envs: 8'"),
        ("p:\n  agent_id: random\n  env_id: CartPole-v1\n  seed: 1.5\n", r"p\.yaml:4: .*'seed' must be a non-negative integer below 2\*\*63, or null"),
        ("p:\n  agent_id: random\n  env_id: CartPole-v1\n  rollout: {vectorization: asink}\n", r"p\.yaml:4: .*unknown rollout vectorization 'asink'\. Use one of: auto, native, sync, async\. Did you mean 'async'\?"),
            ("p:\n  agent_id: random\n  env_id: CartPole-v1\n  vectorization: sync\n", r"p\.yaml:4: .*'vectorization' moved under 'rollout' .*Write 'rollout: \{vectorization: sync\}'"),
        ("p:\n  agent_id: random\n  env_id: CartPole-v1\n  config: [1, 2]\n", r"p\.yaml:4: .*'config' must be a mapping"),
        ("p:\n  agent_id: random\n  env_id: CartPole-v1\n  wrappers: [{id: X, argz: {}}]\n", r"p\.yaml:4: .*unknown wrappers key"),
        ("p: [1]\n", r"p\.yaml:1: profile 'p': a profile must be a mapping"),
        ("p:\n  agent_id: random\n   env_id: x\n", r"p\.yaml:3: the file is not valid YAML"),
        ("defaults: {a: 1}\n", r"has no profiles besides 'defaults'"),
        ("", r"the file is empty"),
        ("- a\n- b\n", r"p\.yaml:1: the top level must be a mapping"),
    ],
)
def test_validation_messages(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        load_profiles(path)


def test_missing_file() -> None:
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profiles("does/not/exist.yaml")


def test_wrapper_forms(tmp_path: Path) -> None:
    text = "p:\n  agent_id: random\n  env_id: CartPole-v1\n  wrappers:\n    - ClipReward\n    - {id: TimeLimit, args: {max_episode_steps: 5}}\n    - {RecordEpisodeStatistics: {}}\n"
    (profile,) = load_profiles(write(tmp_path / "p.yaml", text))
    assert [(w.ref, w.args) for w in profile.wrappers] == [
        ("ClipReward", {}),
        ("TimeLimit", {"max_episode_steps": 5}),
        ("RecordEpisodeStatistics", {}),
    ]


@dataclasses.dataclass
class _Typed:
    learning_rate: float = 3e-4
    hidden: tuple[int, ...] = (64, 64)
    target_kl: float | None = None
    activation: str = "tanh"
    anneal: bool = True


def test_typed_config_validation(tmp_path: Path) -> None:
    (profile,) = load_profiles(write(tmp_path / "p.yaml", "p:\n  agent_id: x\n  env_id: y\n  config:\n    learning_rate: 1e-3\n    hidden: [32]\n    lerning_rate: 1\n"))
    with pytest.raises(ProfileError, match=r"p\.yaml:7: .*unknown config key 'lerning_rate'.*Did you mean 'learning_rate'\?.*daedalus describe agent x"):
        build_config(_Typed, profile.config, profile)
    good = build_config(_Typed, {"learning_rate": "1e-3", "hidden": [32], "target_kl": None, "anneal": False}, profile)
    assert good == _Typed(learning_rate=1e-3, hidden=(32,), target_kl=None, anneal=False)
    with pytest.raises(ProfileError, match=r"'hidden' must be tuple\[int, \.\.\.\], got \['a'\]"):
        build_config(_Typed, {"hidden": ["a"]}, profile)
    with pytest.raises(ProfileError, match=r"'anneal' must be bool, got 1 \(int\)"):
        build_config(_Typed, {"anneal": 1}, profile)
    with pytest.raises(ProfileError, match=r"'target_kl' must be float \| null"):
        build_config(_Typed, {"target_kl": "abc"}, profile)
