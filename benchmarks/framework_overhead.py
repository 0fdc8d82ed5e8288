"""The framework's own cost: a uniformly random policy through the full training path vs the bare env.

Both sides step Gymnasium's native CartPole-v1 vector env with 8 copies and uniformly random
actions. "bare" is a plain loop of ``envs.action_space.sample()`` + ``envs.step``; "daedalus" is
``daedalus.train(agent_id="random", ...)``: the run folder, the rollout source
(:class:`daedalus.rollout.LocalSource`: policy call, worker bookkeeping, trajectory arrays, episode
statistics) and the metric logging, timed by the run's own clock (run.json ``duration_s``
includes building the envs and writing the run). Runs are interleaved; medians are printed.

``--busy`` keeps one of the two cores busy with another process for the whole benchmark (a
user's machine is never idle).

    .venv/bin/python benchmarks/framework_overhead.py [--steps 400000] [--repeats 5] [--busy]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

NUM_ENVS = 8


def spin() -> None:
    """Keep one core busy until terminated."""
    x = 0
    while True:
        x += 1


def bare(steps: int, seed: int) -> float:
    """Steps per second of the native vector env stepped with random actions."""
    envs = gym.make_vec("CartPole-v1", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point")
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(steps // NUM_ENVS):
        envs.step(envs.action_space.sample())
    elapsed = time.perf_counter() - start
    envs.close()
    return steps / elapsed


def framework(steps: int, seed: int) -> tuple[float, float]:
    """Steps per second of ``daedalus.train`` with the random agent: (training loop only, whole call)."""
    import daedalus

    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        result = daedalus.train(
            agent_id="random", env_id="CartPole-v1", num_envs=NUM_ENVS, seed=seed,
            rollout={"vectorization": "native"}, config={"total_steps": steps}, runs_dir=runs,
        )
        whole = time.perf_counter() - start
        assert result.status == "completed" and result.steps == steps, result
        run = json.loads((Path(result.path) / "run.json").read_text())
    return steps / float(run["duration_s"]), steps / whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process")
    args = parser.parse_args()

    import os

    os.environ.setdefault("DAEDALUS_PROGRESS", "plain")
    busy = mp.get_context("spawn").Process(target=spin, daemon=True) if args.busy else None
    if busy is not None:
        busy.start()
    bare_rates, run_rates, call_rates = [], [], []
    try:
        framework(NUM_ENVS * 1000, 0)  # warm-up: imports, first env creation
        for seed in range(args.repeats):
            bare_rates.append(bare(args.steps, seed))
            run_rate, call_rate = framework(args.steps, seed)
            run_rates.append(run_rate)
            call_rates.append(call_rate)
    finally:
        if busy is not None:
            busy.terminate()
    b, r, c = statistics.median(bare_rates), statistics.median(run_rates), statistics.median(call_rates)
    print(f"CartPole-v1, {NUM_ENVS} copies (native vector env), random actions, {args.steps:,} steps x {args.repeats}"
          f"{', one core busy' if args.busy else ''}; medians (steps/s)")
    print(f"  bare vector env          {b:>10,.0f}   per run: {', '.join(f'{x:,.0f}' for x in bare_rates)}")
    print(f"  daedalus train (run)     {r:>10,.0f}   per run: {', '.join(f'{x:,.0f}' for x in run_rates)}   {100 * r / b:.0f}% of bare")
    print(f"  daedalus train (call)    {c:>10,.0f}   per run: {', '.join(f'{x:,.0f}' for x in call_rates)}   {100 * c / b:.0f}% of bare")
    np.set_printoptions()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
