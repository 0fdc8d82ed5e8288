"""The command line through real subprocesses: help, profile errors, --set, batch, runs, user errors, import cost.

Everything here uses the built-in ``random`` agent or tiny agents defined in a temporary
``agents.py`` (referenced as ``agents.py:NAME``), so no test imports torch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write

SCRIPT = Path(sys.executable).with_name("daedalus")
PACKAGE_DIR = Path(__import__("daedalus").__file__).parent


def daedalus(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in ``cwd``."""
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "daedalus"]
    env = {**os.environ, "DAEDALUS_PROGRESS": "plain"}
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def runs_in(runs_dir: Path) -> dict[str, dict]:
    """run.json of every run folder, by profile id."""
    metas = [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*/run.json"))]
    return {m["profile_id"]: m for m in metas}


AGENTS_PY = '''
"""Tiny agents for CLI tests."""
import time
from dataclasses import dataclass

from daedalus import Agent, register_agent, report


class Constant(Agent):
    def __init__(self):
        super().__init__("constant")

    def get_action(self, obs, extra_state=None):
        return 0, extra_state

    def save(self):
        return b"constant"

    def load(self, agent_data):
        assert agent_data == b"constant"


def boom(env_factory, agent, config, artifacts, save_callback):
    artifacts["reached"] = "wrapper"
    raise RuntimeError("boom at training time")


def sleepy(env_factory, agent, config, artifacts, save_callback):
    time.sleep(config.sleep_s)
    report(steps=10)


@dataclass
class TypedConfig:
    total_steps: int = 10
    learning_rate: float = 1e-3


def short(env_factory, agent, config, artifacts, save_callback):
    report(steps=config.total_steps)


BOOM = register_agent("boom", lambda: Constant(), boom)
SLEEPY = register_agent("sleepy", lambda: Constant(), sleepy)
TYPED = register_agent("typed", lambda: Constant(), short, config_class=TypedConfig)
'''


# --------------------------------------------------------------------------- help


def _subcommands(help_text: str) -> list[str]:
    """Command names listed under 'Commands:' in a Click/Typer help page."""
    if "Commands:" not in help_text:
        return []
    section = help_text.split("Commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  ([a-z][a-z0-9-]*)\b", section, flags=re.MULTILINE)]


# Options and arguments each command must document (commands added later only need a working
# --help). Arguments are matched case-insensitively: Typer 0.29 renders them as `{file}`.
EXPECTED_OPTIONS = {
    ("train",): ["--runs-dir", "--set", "FILE"],
    ("batch",): ["--parallel", "--runs-dir", "--set", "FILE"],
    ("module", "add"): ["NAME"],
    ("module", "remove"): ["NAME"],
    ("list", "agents"): ["--filter"],
    ("list", "envs"): ["--filter"],
    ("list", "wrappers"): ["--filter"],
    ("runs", "list"): ["--runs-dir", "--status", "--profile", "--agent", "--env", "--json"],
    ("runs", "show"): ["--runs-dir", "RUN"],
    ("describe", "agent"): ["AGENT_ID"],
}


def test_every_command_has_help(tmp_path: Path) -> None:
    top = ok(daedalus("--help", cwd=tmp_path)).stdout
    commands = _subcommands(top)
    assert {"train", "batch", "module", "list", "runs", "describe"} <= set(commands)
    seen = []
    queue = [(c,) for c in commands]
    while queue:
        path = queue.pop(0)
        out = ok(daedalus(*path, "--help", cwd=tmp_path)).stdout
        assert out.startswith("Usage:") and "--help" in out, path
        queue.extend((*path, sub) for sub in _subcommands(out))
        seen.append(path)
        for option in EXPECTED_OPTIONS.get(path, []):
            assert option.lower() in out.lower(), f"'daedalus {' '.join(path)} --help' does not mention {option}:\n{out}"
    assert set(EXPECTED_OPTIONS) <= set(seen)


def test_no_arguments_prints_help(tmp_path: Path) -> None:
    result = daedalus(cwd=tmp_path)
    assert "Usage:" in result.stdout + result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- broken profiles

BROKEN = {
    "typo_key": (
        "p:\n  agnet_id: random\n  env_id: CartPole-v1\n",
        2,
        ["unknown key 'agnet_id'", "Did you mean 'agent_id'?"],
    ),
    "unknown_agent": (
        "p:\n  agent_id: randum\n  env_id: CartPole-v1\n",
        2,
        ["unknown agent 'randum'", "Did you mean 'random'", "Known agents:", "random"],
    ),
    "unknown_env": (
        "p:\n  agent_id: random\n  env_id: CartPol-v1\n",
        3,
        ["unknown environment 'CartPol-v1'", "'CartPole-v1'"],
    ),
    "wrong_type": (
        "p:\n  agent_id: random\n  env_id: CartPole-v1\n  num_envs: four\n",
        4,
        ["'num_envs' must be an integer", "'four'", "num_envs: 8"],
    ),
    "yaml_syntax": (
        "p:\n  agent_id: random\n  env_id: CartPole-v1\n  config: {total_steps: [1, 2}\n",
        4,
        ["not valid YAML", "Check indentation"],
    ),
    "typed_config_typo": (
        "p:\n  agent_id: agents.py:TYPED\n  env_id: CartPole-v1\n  config:\n    total_steps: 5\n    learnig_rate: 0.1\n",
        6,
        ["unknown config key 'learnig_rate'", "Did you mean 'learning_rate'?", "daedalus describe agent"],
    ),
    "typed_config_type": (
        "p:\n  agent_id: agents.py:TYPED\n  env_id: CartPole-v1\n  config:\n    total_steps: many\n",
        5,
        ["config key 'total_steps' must be int", "'many'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_profile_gives_one_clear_paragraph(tmp_path: Path, case: str) -> None:
    text, line, expected = BROKEN[case]
    write(tmp_path / "agents.py", AGENTS_PY)
    write(tmp_path / "broken.yaml", text)
    result = daedalus("train", "broken.yaml", "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == 2, result
    err = result.stderr.strip()
    assert err.startswith(f"error: broken.yaml:{line}:"), err  # file and line first
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert "\n" not in err, "one paragraph"
    assert not (tmp_path / "runs").exists(), "validation must fail before a run folder is made"


def test_bad_set_override_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", "p:\n  agent_id: random\n  env_id: CartPole-v1\n")
    result = daedalus("train", "p.yaml", "--set", "total_steps", cwd=tmp_path)
    assert result.returncode == 2
    assert "--set 'total_steps'" in result.stderr and "KEY=VALUE" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- --set


def test_set_overrides_profile_and_config_values(tmp_path: Path) -> None:
    write(
        tmp_path / "p.yaml",
        """
        defaults:
          total_steps: 1000
        one:
          agent_id: random
          env_id: CartPole-v1
          seed: 0
        two:
          agent_id: random
          env_id: CartPole-v1
        """,
    )
    sets = ["--set", "total_steps=123", "--set", "seed=7", "--set", "config.extra.depth=3"]
    out = ok(daedalus("train", "p.yaml", "one", "--runs-dir", "runs", *sets, cwd=tmp_path)).stdout
    runs = runs_in(tmp_path / "runs")
    assert list(runs) == ["one"]  # only the named profile trained
    meta = runs["one"]
    assert (meta["status"], meta["steps"], meta["seed"]) == ("completed", 123, 7)
    assert f"run folder: {Path('runs') / meta['run_id']}" in out
    import yaml

    resolved = yaml.safe_load((Path(meta["path"]) / "profile.yaml").read_text())["one"]
    assert resolved["seed"] == 7
    assert resolved["config"] == {"total_steps": 123, "extra": {"depth": 3}}


# --------------------------------------------------------------------------- batch and runs


MIXED = """
defaults:
  total_steps: 200
first_ok:
  agent_id: random
  env_id: CartPole-v1
explodes:
  agent_id: agents.py:BOOM
  env_id: CartPole-v1
second_ok:
  agent_id: random
  env_id: CartPole-v1
  seed: 3
"""


@pytest.fixture(scope="module")
def mixed_batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A batch of three profiles whose middle one raises inside its training wrapper."""
    root = tmp_path_factory.mktemp("mixed")
    write(root / "agents.py", AGENTS_PY)
    write(root / "mixed.yaml", MIXED)
    return root, daedalus("batch", "mixed.yaml", "--runs-dir", "runs", cwd=root)


def test_batch_continues_after_a_failing_profile(mixed_batch: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, result = mixed_batch
    assert "Traceback" not in result.stderr
    runs = runs_in(root / "runs")
    assert {pid: m["status"] for pid, m in runs.items()} == {
        "first_ok": "completed",
        "explodes": "failed",
        "second_ok": "completed",  # trained after the failure
    }
    failed = runs["explodes"]
    assert failed["error"]["type"] == "RuntimeError" and failed["error"]["message"] == "boom at training time"
    assert 'agents.py", line' in failed["error"]["traceback"]
    failed_dir = Path(failed["path"])
    assert (failed_dir / "checkpoints" / "last" / "agent.bin").read_bytes() == b"constant"
    assert json.loads((failed_dir / "artifacts.json").read_text()) == {"reached": "wrapper"}
    # The summary table: one row per profile with its status.
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if line.split()[:1] in (["first_ok"], ["explodes"], ["second_ok"])}
    assert rows == {"first_ok": "completed", "explodes": "failed", "second_ok": "completed"}
    assert "boom at training time" in result.stdout  # the failing run's line names the error


def test_batch_exits_nonzero_when_a_profile_failed(mixed_batch: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = mixed_batch
    assert result.returncode == 1


def test_train_exits_nonzero_when_its_profile_failed(mixed_batch: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = mixed_batch
    result = daedalus("train", "mixed.yaml", "explodes", "--runs-dir", "runs_single", cwd=root)
    assert runs_in(root / "runs_single")["explodes"]["status"] == "failed"
    assert result.returncode == 1


def test_runs_list_filters_by_status(mixed_batch: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = mixed_batch
    completed = ok(daedalus("runs", "list", "--runs-dir", "runs", "--status", "completed", cwd=root)).stdout
    assert "first_ok" in completed and "second_ok" in completed and "explodes" not in completed
    failed = ok(daedalus("runs", "list", "--runs-dir", "runs", "--status", "failed", "--json", cwd=root)).stdout
    assert [r["profile_id"] for r in json.loads(failed)] == ["explodes"]
    everything = ok(daedalus("runs", "list", "--runs-dir", "runs", cwd=root)).stdout
    assert all(header in everything for header in ("run", "profile", "agent", "env", "steps", "best", "final", "status"))
    assert all(pid in everything for pid in ("first_ok", "explodes", "second_ok"))
    nothing = ok(daedalus("runs", "list", "--runs-dir", "runs", "--status", "crashed", cwd=root)).stdout
    assert "no runs" in nothing


def test_runs_show(mixed_batch: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = mixed_batch
    failed = runs_in(root / "runs")["explodes"]
    out = ok(daedalus("runs", "show", failed["run_id"], "--runs-dir", "runs", cwd=root)).stdout
    fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.splitlines() if ":" in line}
    assert fields["status"] == "failed" and fields["profile_id"] == "explodes"
    assert fields["error"] == "RuntimeError: boom at training time"
    assert json.loads(fields["checkpoints"])[0]["name"] == "last"
    assert "run.json" in fields["files"] and "profile.yaml" in fields["files"]
    # A unique prefix works too; an unknown one is a one-line error.
    prefix = ok(daedalus("runs", "show", "first_ok", "--runs-dir", "runs", cwd=root)).stdout
    assert "completed" in prefix
    missing = daedalus("runs", "show", "nope", "--runs-dir", "runs", cwd=root)
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr and "Traceback" not in missing.stderr


def test_batch_parallel_runs_profiles_at_once(tmp_path: Path) -> None:
    write(tmp_path / "agents.py", AGENTS_PY)
    write(
        tmp_path / "two.yaml",
        """
        defaults:
          sleep_s: 2.0
        left:
          agent_id: agents.py:SLEEPY
          env_id: CartPole-v1
        right:
          agent_id: agents.py:SLEEPY
          env_id: CartPole-v1
        """,
    )
    result = ok(daedalus("batch", "two.yaml", "--parallel", "2", "--runs-dir", "runs", cwd=tmp_path, timeout=180))
    runs = runs_in(tmp_path / "runs")
    assert {pid: m["status"] for pid, m in runs.items()} == {"left": "completed", "right": "completed"}
    left, right = runs["left"], runs["right"]
    assert left["batch_id"] == right["batch_id"] is not None
    assert left["pid"] != right["pid"]
    # Both trained at the same time: each started before the other finished.
    assert left["started_at"] < right["finished_at"] and right["started_at"] < left["finished_at"]
    assert "left" in result.stdout and "right" in result.stdout  # summary table


# --------------------------------------------------------------------------- user code errors

BAD_MODULE = '''
"""A user module with a bug at import time."""


def build_table():
    return {"a": 1}["b"]


TABLE = build_table()
'''


@pytest.mark.parametrize("how", ["module_add", "project_file", "file_ref"])
def test_user_module_error_shows_the_users_frames_only(tmp_path: Path, how: str) -> None:
    write(tmp_path / "badmod.py", BAD_MODULE)
    write(tmp_path / "p.yaml", "p:\n  agent_id: badmod.py:AGENT\n  env_id: CartPole-v1\n")
    if how == "module_add":
        result = daedalus("module", "add", "badmod", cwd=tmp_path)
    elif how == "project_file":
        write(tmp_path / ".daedalus.yaml", "modules:\n  - badmod\n")
        result = daedalus("list", "agents", cwd=tmp_path)
    else:
        result = daedalus("train", "p.yaml", "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == 2, result
    err = result.stderr
    assert "badmod" in err and "KeyError" in err
    # The user's own frames: file and line of the failing call and of the failing expression.
    assert re.search(r'badmod\.py", line 8, in <module>', err), err
    assert re.search(r'badmod\.py", line 5, in build_table', err), err
    assert "Traceback" not in err
    assert str(PACKAGE_DIR) not in err and "importlib" not in err and "<frozen" not in err
    if how == "module_add":
        assert not (tmp_path / ".daedalus.yaml").exists()  # a broken module is not recorded


# --------------------------------------------------------------------------- import cost


def test_import_daedalus_is_fast(tmp_path: Path) -> None:
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import daedalus"], cwd=tmp_path, check=True, timeout=60)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.3, f"python -c 'import daedalus' took {min(timings):.3f}s at best ({timings})"


def test_import_daedalus_imports_no_heavy_packages(tmp_path: Path) -> None:
    code = (
        "import sys, json, daedalus\n"
        "from daedalus import Agent, ExtraState, ProfileConfig, register_agent\n"
        "print(json.dumps(sorted(m for m in ('torch', 'gymnasium', 'typer', 'ray', 'click', 'rich') if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
