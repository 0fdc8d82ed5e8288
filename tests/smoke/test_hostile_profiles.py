"""Malformed and hostile profile files through the CLI: exit 2, one clear message, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write

#: Runs the CLI in this interpreter and prints the time it took and its own peak RSS
#: (VmHWM: unlike wait4's ru_maxrss it does not inherit the pytest parent's peak).
CLI_WITH_PEAK = """
import runpy, sys, time
start = time.perf_counter()
sys.argv = ["daedalus", *{args!r}]
try:
    runpy.run_module("daedalus", run_name="__main__")
finally:
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(f"MEASURED {{time.perf_counter() - start:.3f}} {{hwm}}", file=sys.stderr)
"""


def cli_measured(*args: str, cwd: Path) -> tuple[int, str, float, int]:
    """Exit code, stderr without the measurement, seconds, peak RSS in KiB."""
    result = subprocess.run(
        [sys.executable, "-c", CLI_WITH_PEAK.format(args=list(args))],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    lines = result.stderr.splitlines()
    seconds, peak = lines[-1].split()[1:]
    return result.returncode, "\n".join(lines[:-1]), float(seconds), int(peak)


def billion_laughs(levels: int = 9, fan_out: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan_out) + "]")
    lines += ["p:", "  agent_id: ppo", "  env_id: CartPole-v1", f"  config: {{hidden_sizes: *a{levels}}}"]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 1024  # a 1 KB file that would expand to 387 million values
    code, stderr, seconds, peak_kib = cli_measured("train", str(path), cwd=tmp_path)
    assert code == 2 and "Traceback" not in stderr
    assert stderr.startswith(f"error: {path}:6: aliases ('*name') expand the file past 100,000 values")
    assert seconds < 1.0, f"took {seconds:.2f} s"
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib / 1024:.0f} MB"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("p: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 64 levels"),
        ("p: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", "nested more than 64 levels"),
        ("p:\n  agent_id: ppo\n  env_id: CartPole-v1\n  agent_id: dqn\n", "the key 'agent_id' appears twice in the same mapping (lines 2 and 4)"),
        ("p:\n  agent_id: ppo\n  env_id: CartPole-v1\np:\n  agent_id: dqn\n  env_id: CartPole-v1\n", "the key 'p' appears twice in the same mapping (lines 1 and 4)"),
        ("p:\n  agent_id: ppo\n  env_id: !!python/object/apply:os.system ['touch MARKER']\n", "python/object/apply"),
    ],
    ids=["deep-sequences", "deep-mappings", "duplicate-key", "duplicate-profile-id", "python-tag"],
)
def test_malformed_yaml_is_one_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "daedalus", "train", str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {path}:") and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "runs").exists()


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", """
        p:
          agent_id: ppo
          env_id: CartPole-v1
          config:
            learning_rate: 1.0e-3
            learning_rate: 3.0e-4
    """)
    result = subprocess.run([sys.executable, "-m", "daedalus", "train", "p.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: p.yaml:6: the key 'learning_rate' appears twice in the same mapping (lines 5 and 6)")
    assert result.stderr.rstrip().endswith("Keep one of them.")


def test_an_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: 2 GiB that take no disk
    code, stderr, seconds, peak_kib = cli_measured("train", str(path), cwd=tmp_path)
    assert code == 2 and "Traceback" not in stderr and "MiB" in stderr
    assert peak_kib < 200 * 1024 and seconds < 1.0
