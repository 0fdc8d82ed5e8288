"""safe_yaml: data and line numbers, and refusal of hostile files with one-paragraph messages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from daedalus import safe_yaml
from daedalus.errors import ProfileError
from daedalus.safe_yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, load_yaml, read_yaml_file


def load(text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """load_yaml on dedented text, with the source 'p.yaml'."""
    return load_yaml(textwrap.dedent(text).lstrip("\n"), "p.yaml")


def refusal(text: str) -> str:
    """The ProfileError message load_yaml gives for ``text`` (fails the test if none)."""
    with pytest.raises(ProfileError) as info:
        load_yaml(text, "p.yaml")
    message = str(info.value)
    assert "\n" not in message.strip(), "messages are one paragraph"
    return message


def billion_laughs(levels: int = 9, refs: int = 9) -> str:
    """The classic alias bomb: each level is a list of ``refs`` aliases to the level below."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * refs) + "]")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- normal files

PROFILE = """
defaults:
  batch_size: 32
cartpole:
  agent_id: ppo
  env_id: CartPole-v1
  config:
    batch_size: 128
    net: {hidden: [64, 64], act: tanh}
  wrappers:
    - id: TimeLimit
      kwargs: {max_episode_steps: 200}
    - ClipAction
  seed: null
"""


def test_profile_data_and_lines() -> None:
    data, lines = load(PROFILE)
    assert data == {
        "defaults": {"batch_size": 32},
        "cartpole": {
            "agent_id": "ppo",
            "env_id": "CartPole-v1",
            "config": {"batch_size": 128, "net": {"hidden": [64, 64], "act": "tanh"}},
            "wrappers": [{"id": "TimeLimit", "kwargs": {"max_episode_steps": 200}}, "ClipAction"],
            "seed": None,
        },
    }
    assert lines == {
        ("defaults",): 1,
        ("defaults", "batch_size"): 2,
        ("cartpole",): 3,
        ("cartpole", "agent_id"): 4,
        ("cartpole", "env_id"): 5,
        ("cartpole", "config"): 6,
        ("cartpole", "config", "batch_size"): 7,
        ("cartpole", "config", "net"): 8,
        ("cartpole", "config", "net", "hidden"): 8,
        ("cartpole", "config", "net", "hidden", "0"): 8,
        ("cartpole", "config", "net", "hidden", "1"): 8,
        ("cartpole", "config", "net", "act"): 8,
        ("cartpole", "wrappers"): 9,
        ("cartpole", "wrappers", "0"): 10,
        ("cartpole", "wrappers", "0", "id"): 10,
        ("cartpole", "wrappers", "0", "kwargs"): 11,
        ("cartpole", "wrappers", "0", "kwargs", "max_episode_steps"): 11,
        ("cartpole", "wrappers", "1"): 12,
        ("cartpole", "seed"): 13,
    }


def test_empty_document() -> None:
    assert load_yaml("", "p.yaml") == (None, {})
    assert load_yaml("# only a comment\n", "p.yaml") == (None, {})


def test_non_string_keys_are_kept_and_lines_use_str_of_key() -> None:
    data, lines = load("true: a\n3: b\nnull: c\n0x10: d\n")
    assert data == {True: "a", 3: "b", None: "c", 16: "d"}
    # str(key) of the loaded key, so callers can look a line up with str(key).
    assert lines == {("True",): 1, ("3",): 2, ("None",): 3, ("16",): 4}


# --------------------------------------------------------------------------- duplicate keys


def test_duplicate_key_in_nested_mapping() -> None:
    text = "p:\n  agent_id: ppo\n  config:\n    lr: 0.1\n    gamma: 0.9\n    lr: 0.2\n"
    assert refusal(text) == (
        "p.yaml:6: the key 'lr' appears twice in the same mapping (lines 4 and 6); YAML would "
        "silently keep only the last value. Keep one of them."
    )


def test_duplicate_top_level_profile_ids() -> None:
    text = "first:\n  agent_id: ppo\nsecond:\n  agent_id: dqn\nfirst:\n  agent_id: sac\n"
    message = refusal(text)
    assert message.startswith("p.yaml:5: the key 'first' appears twice")
    assert "(lines 1 and 5)" in message
    assert message.endswith("Keep one of them.")


def test_duplicate_keys_of_equal_value_but_different_spelling() -> None:
    # 1 and 0x1 load as the same int key: PyYAML would silently drop one.
    message = refusal("a:\n  1: x\n  0x1: y\n")
    assert message.startswith("p.yaml:3: the key '0x1' appears twice in the same mapping")
    assert "(lines 2 and 3)" in message


def test_same_key_in_different_mappings_is_fine() -> None:
    data, _ = load("a: {x: 1}\nb: {x: 2}\n")
    assert data == {"a": {"x": 1}, "b": {"x": 2}}


# --------------------------------------------------------------------------- merge keys


def test_merge_key_is_not_a_duplicate() -> None:
    data, lines = load(
        """
        base: &base
          lr: 0.1
          gamma: 0.99
        p:
          <<: *base
          lr: 0.5
        """
    )
    assert data == {"base": {"lr": 0.1, "gamma": 0.99}, "p": {"lr": 0.5, "gamma": 0.99}}
    # The merge key is recorded; the merged mapping is not walked a second time.
    assert lines == {
        ("base",): 1,
        ("base", "lr"): 2,
        ("base", "gamma"): 3,
        ("p",): 4,
        ("p", "<<"): 5,
        ("p", "lr"): 6,
    }


def test_two_merges_and_merge_lists_are_not_duplicates() -> None:
    data, _ = load("a: &a {k: 1, x: 1}\nb: &b {k: 2, y: 2}\nc: {<<: [*a, *b], z: 3}\n")
    assert data["c"] == {"k": 1, "x": 1, "y": 2, "z": 3}  # earlier in the list wins


def test_merge_precedence_follows_the_spec() -> None:
    # PyYAML 6.0.4 gets both wrong (yaml/pyyaml#953): the override inside 'mid' lost to
    # the key it overrides, and the last mapping of a '<<' list won for longer keys.
    data, _ = load(
        """
        base: &base {kk: 1}
        mid: &mid {<<: *base, kk: 2}
        top: {<<: *mid}
        other: &other {kk: 3}
        listed: {<<: [*other, *base]}
        """
    )
    assert data["top"] == {"kk": 2}
    assert data["listed"] == {"kk": 3}


def test_merged_mapping_reused_through_an_alias_is_not_a_duplicate() -> None:
    # The anchored mapping is flattened while building 'first'; 'second' reuses it.
    data, _ = load(
        """
        first:
          <<: &defaults
            <<: &base
              source: staging
            source: production
        second: *defaults
        """
    )
    assert data == {"first": {"source": "production"}, "second": {"source": "production"}}


def test_duplicate_key_next_to_a_merge_key_is_refused() -> None:
    message = refusal("base: &b {a: 1}\np:\n  <<: *b\n  a: 2\n  a: 3\n")
    assert message.startswith("p.yaml:5: the key 'a' appears twice in the same mapping")
    assert "(lines 4 and 5)" in message


def test_merge_of_a_scalar_is_refused_with_its_line() -> None:
    message = refusal("p:\n  x: 1\n  <<: 3\n")
    assert message.startswith("p.yaml:3: the file is not valid YAML ('<<' must be followed by")


# --------------------------------------------------------------------------- alias bombs


def test_billion_laughs_is_refused_quickly() -> None:
    text = billion_laughs()
    assert len(text) < 1024
    start = time.perf_counter()
    message = refusal(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert re.fullmatch(
        r"p\.yaml:\d+: aliases \('\*name'\) expand the file past 100,000 values .*"
        r"Write the values out or reduce repetition.*",
        message,
    ), message


BOMB_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_safe_yaml import billion_laughs
from daedalus.errors import ProfileError
from daedalus.safe_yaml import load_yaml
start = time.perf_counter()
try:
    load_yaml(billion_laughs(), "bomb.yaml")
except ProfileError:
    print("refused", time.perf_counter() - start)
else:
    print("loaded")
print(peak_rss_kib())
"""


def peak_rss_code() -> str:
    """Source of ``peak_rss_kib()``: this process's own peak RSS (VmHWM).

    Not ``ru_maxrss`` from wait4: on Linux it carries over the parent's peak through
    fork and exec, so a child of a pytest process that imported torch reports ~380 MB.
    """
    return (
        "def peak_rss_kib():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
    )


def test_billion_laughs_peak_memory_in_a_child_process() -> None:
    code = peak_rss_code() + BOMB_CHILD.format(tests=str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    refused, peak = result.stdout.splitlines()
    assert refused.startswith("refused "), result.stdout
    assert float(refused.split()[1]) < 1.0
    assert int(peak) < 200 * 1024, f"peak RSS {peak} KiB"


def test_aliases_under_the_limit_load_and_lines_do_not_expand() -> None:
    # 1,000 items referenced 90 times: about 90,000 values, under MAX_NODES.
    items = ", ".join(str(i) for i in range(1000))
    text = f"a: &a [{items}]\nb: [" + ", ".join(["*a"] * 90) + "]\n"
    data, lines = load_yaml(text, "p.yaml")
    assert len(data["b"]) == 90 and data["b"][89] is data["a"]
    assert lines[("b", "89")] == 1  # an alias points at its anchor's line
    assert ("a", "999") in lines
    assert ("b", "0", "0") not in lines  # the aliased list is walked once, under 'a'
    assert len(lines) == 1 + 1000 + 1 + 90


def test_aliases_just_over_the_limit_are_refused() -> None:
    items = ", ".join(str(i) for i in range(1000))
    text = f"a: &a [{items}]\nb: [" + ", ".join(["*a"] * 100) + "]\n"
    assert "aliases ('*name') expand the file past 100,000 values" in refusal(text)


def test_many_values_without_aliases_are_refused() -> None:
    text = "[" + "0," * (MAX_NODES + 1) + "]"
    message = refusal(text)
    assert message.startswith("p.yaml:1: the file holds more than 100,000 values")


def test_cyclic_alias_is_refused() -> None:
    message = refusal("a: &a\n  b: *a\n")
    assert message.startswith("p.yaml:2: the alias '*a' is inside the value anchored as '&a'")


def test_undefined_alias_and_duplicate_anchor_are_refused() -> None:
    assert refusal("a: 1\nb: *nowhere\n").startswith(
        "p.yaml:2: the alias '*nowhere' refers to no anchor defined before it."
    )
    assert refusal("a: &x 1\nb: &x 2\n").startswith(
        "p.yaml:2: the anchor '&x' is defined twice in the document."
    )


# --------------------------------------------------------------------------- deep nesting


def test_100000_nested_brackets_are_refused_without_recursion() -> None:
    start = time.perf_counter()
    message = refusal("[" * 100_000)
    assert time.perf_counter() - start < 5.0
    assert message.startswith("p.yaml:1: values are nested more than 64 levels deep.")


def test_10000_nested_flow_mappings_are_refused() -> None:
    message = refusal("{a: " * 10_000 + "1" + "}" * 10_000)
    assert message.startswith("p.yaml:1: values are nested more than 64 levels deep.")


def test_deep_block_mappings_are_refused_on_the_right_line() -> None:
    levels = MAX_DEPTH + 5
    text = "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "v"
    # Mapping number 65 starts with the key on line 65.
    assert refusal(text).startswith("p.yaml:65: values are nested more than 64 levels deep.")


def test_depth_limit_is_exactly_max_depth() -> None:
    data, _ = load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "p.yaml")
    for _ in range(MAX_DEPTH - 1):
        data = data[0]
    assert data == []
    message = refusal("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert message.startswith("p.yaml:1: values are nested more than 64 levels deep.")


def test_aliases_cannot_nest_past_the_limit() -> None:
    text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    message = refusal(text)
    assert message.startswith(
        "p.yaml:2: values are nested more than 64 levels deep once the alias '*a' is expanded."
    )


# --------------------------------------------------------------------------- size


def test_file_over_the_limit_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(2 * 1024**3)  # sparse: 2 GiB long, no disk used

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened; the size must be checked with os.stat first")

    monkeypatch.setattr(safe_yaml, "open", no_open, raising=False)
    with pytest.raises(ProfileError) as info:
        read_yaml_file(path)
    assert str(info.value).startswith(
        f"{path}: the file is 2,147,483,648 bytes, over the 1,048,576-byte (1 MiB) limit"
    )


def test_file_that_grew_after_stat_is_read_only_up_to_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing.yaml"
    path.write_bytes(b"#" * (2 * MAX_FILE_BYTES))
    real_stat = os.stat

    def stale_stat(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_stat(p, *args, **kwargs)
        if Path(p) != path:
            return result
        fields = list(result)
        fields[6] = 10  # st_size as it was before the file grew
        return os.stat_result(fields)

    monkeypatch.setattr(safe_yaml.os, "stat", stale_stat)
    with pytest.raises(ProfileError) as info:
        read_yaml_file(path)
    assert str(info.value).startswith(f"{path}: the file is at least 1,048,577 bytes, over the")


def test_text_over_the_limit_counts_bytes_not_characters() -> None:
    text = "a: '" + "é" * (MAX_FILE_BYTES // 2) + "'"  # fewer characters than bytes
    assert len(text) < MAX_FILE_BYTES
    message = refusal(text)
    assert message.startswith("p.yaml: the file is 1,048,581 bytes, over the 1,048,576-byte")


def test_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: '" + "x" * (MAX_FILE_BYTES - 6) + "'\n")
    assert path.stat().st_size == MAX_FILE_BYTES
    data, lines = read_yaml_file(path)
    assert len(data["a"]) == MAX_FILE_BYTES - 6
    assert lines == {("a",): 1}


# --------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("tag", "body"),
    [
        ("!!python/object/apply:os.system", '["touch {marker}"]'),
        ("!!python/object/new:subprocess.check_call", '[["touch", "{marker}"]]'),
        ("!!python/object/apply:subprocess.call", '{{args: [["touch", "{marker}"]]}}'),
    ],
)
def test_python_tags_are_refused_and_never_run(tmp_path: Path, tag: str, body: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.yaml"
    path.write_text(f"p:\n  agent_id: ppo\n  seed: {tag} {body.format(marker=marker)}\n")
    with pytest.raises(ProfileError) as info:
        read_yaml_file(path)
    assert str(info.value).startswith(f"{path}:3: the tag '{tag}' is not allowed.")
    assert not marker.exists()


def test_python_name_and_custom_tags_are_refused() -> None:
    assert refusal("a: !!python/name:os.system ''\n").startswith(
        "p.yaml:1: the tag '!!python/name:os.system' is not allowed."
    )
    assert refusal("a:\n  b: !secret x\n").startswith("p.yaml:2: the tag '!secret' is not allowed.")


def test_plain_yaml_tags_are_allowed() -> None:
    data, _ = load("a: !!str 12\nb: !!int '7'\nc: !!set {x: null}\nd: !!float 1\n")
    assert data == {"a": "12", "b": 7, "c": {"x"}, "d": 1.0}
    assert isinstance(data["d"], float)


# --------------------------------------------------------------------------- invalid YAML


def test_invalid_yaml_names_the_line() -> None:
    assert refusal("p:\n  agent_id: random\n   env_id: x\n") == (
        "p.yaml:3: the file is not valid YAML (mapping values are not allowed here; the mistake "
        "is on this line or the one above). Check indentation and that every 'key: value' pair "
        "has a space after the colon."
    )


def test_unclosed_bracket_names_a_line() -> None:
    assert refusal("a: 1\nb: [1, 2\nc: 3\n").startswith("p.yaml:3: the file is not valid YAML (")


@pytest.mark.parametrize(
    ("text", "start"),
    [
        (
            "a:\n  b: !!int abc\n",
            "p.yaml:2: the file is not valid YAML (cannot read 'abc' as int (",
        ),
        (
            "a: !!bool maybe\n",
            "p.yaml:1: the file is not valid YAML (cannot read 'maybe' as bool (",
        ),
        ("a: !!timestamp 2001-13-45\n", "p.yaml:1: the file is not valid YAML (cannot read"),
        ("a: " + "1" * 5000 + "\n", "p.yaml:1: the file is not valid YAML (cannot read '1111"),
    ],
)
def test_values_the_safe_loader_cannot_build_are_profile_errors(text: str, start: str) -> None:
    # Stock yaml.safe_load raises ValueError/KeyError/AttributeError with a traceback here.
    assert refusal(text).startswith(start)


def test_control_character_names_its_line() -> None:
    assert refusal("a: 1\nb: \x07\n").startswith(
        "p.yaml:2: the file is not valid YAML (unacceptable character #x0007"
    )


def test_two_documents_are_refused() -> None:
    assert refusal("a: 1\n---\nb: 2\n").startswith("p.yaml:2: the file is not valid YAML (")


# --------------------------------------------------------------------------- read_yaml_file


def test_read_yaml_file_reads_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("p:\n  agent_id: ppo\n")
    assert read_yaml_file(path) == ({"p": {"agent_id": "ppo"}}, {("p",): 1, ("p", "agent_id"): 2})
    path.write_text("p:\n  a: 1\n  a: 2\n")
    with pytest.raises(ProfileError, match=rf"^{re.escape(str(path))}:3: the key 'a' appears"):
        read_yaml_file(path)


def test_read_yaml_file_missing_directory_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nope\.yaml: no such profile file\. Check the path"):
        read_yaml_file(tmp_path / "nope.yaml")
    with pytest.raises(ProfileError, match=r"nope\.yaml: no such run file\."):
        read_yaml_file(tmp_path / "nope.yaml", kind="run file")
    with pytest.raises(ProfileError, match=r": the profile file is a directory\. Point to a YAML"):
        read_yaml_file(tmp_path)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("a: 1\nb: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ProfileError, match=r"latin1\.yaml:2: the profile file is not UTF-8 text"):
        read_yaml_file(latin1)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_yaml_file_refuses_a_fifo_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ProfileError, match=r"pipe\.yaml: the profile file is not a regular file"):
        read_yaml_file(fifo)
