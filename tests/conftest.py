"""Shared fixtures: every test runs in its own working directory, with no stray project file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DAEDALUS_PROGRESS", "plain")
# Every finished run draws plots/ (about 0.4 s each, plus matplotlib's import); the suite trains
# hundreds of runs, so only the tests about plots turn it back on.
os.environ.setdefault("DAEDALUS_PLOTS", "0")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (dedented) and return the path."""
    import textwrap

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


#: The custom resource of the second node of :func:`ray_cluster`: ``resources={REMOTE_NODE: 1}``
#: places a Ray task or actor there (another raylet, another object store, its own temp dir).
REMOTE_NODE = "daedalus_test_node_b"


@pytest.fixture(scope="session")
def ray_cluster() -> object:
    """One real Ray cluster for the whole session: a head node and a second node, both local.

    The head has 2 CPUs, the second node 2 CPUs and the resource :data:`REMOTE_NODE`, so tests
    can place work on "another machine" (``ray.cluster_utils.Cluster`` runs two raylets with
    separate object stores on this host). The driver stays connected for the session; code under
    test finds Ray already initialized and must neither re-initialize nor shut it down.
    """
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    store = 150 * 2**20
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": store})
    cluster.add_node(num_cpus=2, resources={REMOTE_NODE: 2}, object_store_memory=store)
    # Workers import test helpers (tests.rollout_envs) by name: put the repository on their path.
    root = str(Path(__file__).resolve().parents[1])
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}}
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False, runtime_env=runtime_env)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="session")
def cartpole_expert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PPO expert on CartPole-v1 (examples/cartpole.yaml, seed 0; its greedy return is 500), trained
    once per session; returns the run folder. Tests make their own demonstrations from it."""
    import daedalus

    example = Path(__file__).resolve().parents[1] / "examples" / "cartpole.yaml"
    runs = tmp_path_factory.mktemp("expert-runs")
    run = daedalus.train(example, runs_dir=runs, overrides=["config.eval_every_steps=0", "config.final_eval_episodes=20"])
    assert run.status == "completed" and run.final_return is not None and run.final_return >= 475, run
    return Path(run.path)
