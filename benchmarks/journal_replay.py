"""What a resume costs before training continues: replaying the env journal.

A journal of ``--steps`` random CartPole actions (8 envs) is written, then replayed through
``local_source(...).reset()`` as ``daedalus resume`` does, ``--repeats`` times per vectorization;
medians are printed. ``--busy`` keeps one of the two cores busy with another process.

    .venv/bin/python benchmarks/journal_replay.py [--steps 1000000] [--repeats 3] [--busy]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time

import gymnasium as gym
import numpy as np

from daedalus.rollout.journal import EnvJournal
from daedalus.rollout.source import local_source

NUM_ENVS = 8


def spin() -> None:
    """Keep one core busy until terminated."""
    x = 0
    while True:
        x += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps summed over the 8 copies")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", action="store_true")
    args = parser.parse_args()
    spinner = mp.Process(target=spin, daemon=True) if args.busy else None
    if spinner is not None:
        spinner.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            journal = EnvJournal(f"{folder}/journal")
            journal.record_reset(0)
            records = args.steps // NUM_ENVS
            for actions in np.random.default_rng(0).integers(0, 2, size=(records, NUM_ENVS)):
                journal.record(actions)
            journal.flush()
            for vectorization in ("native", "sync"):
                times = []
                for _ in range(args.repeats):
                    source = local_source(lambda seed: gym.make("CartPole-v1"), NUM_ENVS, "CartPole-v1", {}, vectorization, 0, "local", None,
                                          EnvJournal.open_for_resume(f"{folder}/journal", records))
                    start = time.perf_counter()
                    source.reset(seed=0)
                    times.append(time.perf_counter() - start)
                    source.close()
                print(f"{vectorization:>6}: replay of {args.steps:,} env steps: median {statistics.median(times):.2f} s "
                      f"(runs: {', '.join(f'{t:.2f}' for t in times)}){' [one core busy]' if args.busy else ''}", flush=True)
    finally:
        if spinner is not None:
            spinner.terminate()


if __name__ == "__main__":
    main()
