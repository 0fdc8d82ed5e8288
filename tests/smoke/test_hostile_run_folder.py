"""A run folder is data: evaluating or replaying one made elsewhere never runs its code.

Each case takes a real run (the random agent, a few steps), edits its ``profile.yaml`` the
way an attacker sharing the folder would, plants code that writes a marker file when it is
imported, and runs ``daedalus evaluate`` / ``replay`` from another folder. The command must
exit 2 with one paragraph naming the reference and ``--trust-code``, no traceback, and the
marker must never appear.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import daedalus
from tests.conftest import write

EVIL_CODE = """
from pathlib import Path
Path({marker!r}).write_text("code from the run folder ran")

class Agent:
    pass

def make_env(**kwargs):
    raise SystemExit("never")

class Wrap:
    def __init__(self, env):
        self.env = env
"""


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daedalus", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A genuine run folder of the random agent (copied for each case)."""
    root = tmp_path_factory.mktemp("trained")
    result = daedalus.train(agent_id="random", env_id="CartPole-v1", config={"total_steps": 20}, runs_dir=root / "runs")
    assert result.status == "completed"
    return result.path


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A copy of the run under tmp/shared/, and an empty project folder tmp/elsewhere/ to work from."""
    import shutil

    target = tmp_path / "shared" / trained.name
    shutil.copytree(trained, target)
    (tmp_path / "elsewhere").mkdir()
    return target


def tamper(run: Path, **changes: object) -> None:
    profile_file = run / "profile.yaml"
    data = yaml.safe_load(profile_file.read_text())
    (profile_id,) = data
    data[profile_id].update(changes)
    profile_file.write_text(yaml.safe_dump(data))


def plant(folder: Path, name: str, marker: Path) -> Path:
    return write(folder / name, EVIL_CODE.format(marker=str(marker)))


def assert_refused(result: subprocess.CompletedProcess[str], marker: Path, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1  # one paragraph
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert not marker.exists(), "code from the run folder was executed"


def test_a_file_agent_inside_the_folder_is_not_imported(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    plant(run, "evil.py", marker)
    tamper(run, agent_id="evil.py:Agent")
    result = cli("evaluate", str(run), "-n", "1", cwd=tmp_path / "elsewhere")
    assert_refused(result, marker, "refers to 'evil.py:Agent'", "--trust-code", "Nothing was imported")


def test_an_absolute_file_reference_is_not_imported(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = plant(tmp_path, "evil_abs.py", marker)
    tamper(run, env_id=f"{evil}:make_env")
    assert_refused(cli("evaluate", str(run), cwd=tmp_path / "elsewhere"), marker, f"'{evil}:make_env'", "--trust-code")


def test_a_project_file_inside_the_folder_is_ignored(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    plant(run, "evil_mod.py", marker)
    write(run / ".daedalus.yaml", "modules: [evil_mod]\n")
    tamper(run, agent_id="evil_mod:Agent")
    # Even with the folder on the import path, evil_mod is not a module of the current project.
    result = cli("evaluate", str(run), cwd=tmp_path / "elsewhere", env={"PYTHONPATH": str(run)})
    assert_refused(result, marker, "module 'evil_mod' is not one of the current project's modules")


def test_a_standard_library_callable_with_env_args_is_refused(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    tamper(run, env_id="os:system", env_args={"command": f"touch {marker}"})
    assert_refused(cli("evaluate", str(run), cwd=tmp_path / "elsewhere"), marker, "'os:system'")


def test_gymnasium_module_form_does_not_import_the_module(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    plant(run, "evil_envs.py", marker)
    tamper(run, env_id="evil_envs:Evil-v0")
    result = cli("evaluate", str(run), cwd=tmp_path / "elsewhere", env={"PYTHONPATH": str(run)})
    assert_refused(result, marker, "'evil_envs:Evil-v0'", "--trust-code")


def test_a_wrapper_reference_is_refused_by_replay_too(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    plant(run, "evil.py", marker)
    tamper(run, wrappers=[{"id": "evil.py:Wrap", "args": {}}])
    result = cli("replay", str(run), "--video", str(tmp_path / "v.gif"), cwd=tmp_path / "elsewhere")
    assert_refused(result, marker, "'evil.py:Wrap'", "--trust-code")


def test_python_tags_in_the_profile_are_not_constructed(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    text = (run / "profile.yaml").read_text()
    (run / "profile.yaml").write_text(text.replace("env_id: CartPole-v1", f"env_id: !!python/object/apply:os.system ['touch {marker}']"))
    result = cli("evaluate", str(run), cwd=tmp_path / "elsewhere")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "profile.yaml" in result.stderr
    assert not marker.exists()


def test_trust_code_imports_and_says_what(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    write(run / "benign.py", f"""
        from pathlib import Path
        from daedalus.agents.random_agent import AGENT_SPEC
        Path({str(marker)!r}).write_text("imported because the user trusted it")
        SPEC = AGENT_SPEC
    """)
    tamper(run, agent_id="benign.py:SPEC")
    assert_refused(cli("evaluate", str(run), cwd=tmp_path / "elsewhere"), marker, "'benign.py:SPEC'")
    result = cli("evaluate", str(run), "-n", "2", "--trust-code", cwd=tmp_path / "elsewhere")
    assert result.returncode == 0, result.stderr
    assert f"--trust-code: importing code named by {run}: agent_id: benign.py:SPEC" in result.stderr
    assert marker.read_text() == "imported because the user trusted it"


def test_project_modules_of_the_working_directory_are_trusted(run: Path, tmp_path: Path) -> None:
    project = tmp_path / "elsewhere"
    write(project / "my_agents.py", """
        from daedalus.agents.random_agent import AGENT_SPEC
        SPEC = AGENT_SPEC
    """)
    write(project / ".daedalus.yaml", "modules: [my_agents]\n")
    tamper(run, agent_id="my_agents:SPEC")
    result = cli("evaluate", str(run), "-n", "2", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "episodes" in result.stdout or "mean" in result.stdout


def test_training_refuses_re_exports_and_standard_library_references(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    write(tmp_path / "p.yaml", f"""
        shell:
          agent_id: random
          env_id: os:system
          env_args: {{command: touch {marker}}}
        reexport:
          agent_id: random
          env_id: gymnasium:make
          env_args: {{id: CartPole-v1}}
    """)
    result = cli("train", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "p.yaml:3: profile 'shell': reference 'os:system' names the standard-library module 'os'" in result.stderr
    assert (
        "p.yaml:7: profile 'reexport': reference 'gymnasium:make' names 'make', which is defined in "
        "'gymnasium.envs.registration', not in 'gymnasium'"
    ) in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()  # nothing started
