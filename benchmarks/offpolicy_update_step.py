"""Time one SAC / TD3 gradient step (closed form vs autograd) and count its page faults.

Run from the repository root:

    .venv/bin/python benchmarks/offpolicy_update_step.py                       # SAC 256x256, TD3 400x300 (zoo sizes)
    .venv/bin/python benchmarks/offpolicy_update_step.py --hidden 128,128 --threads 2

Each figure is the median of 7 timings of 200 ``sac_update`` / ``td3_update`` calls (batch 256,
one gradient step each) on a buffer of 3,000 random Pendulum-shaped transitions, after 50 warm-up
calls; "faults" are minor page faults per call (``getrusage``), i.e. freshly mapped memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import gymnasium as gym
import numpy as np
import torch

from daedalus.algos.sac import SACConfig, make_sac_agent, sac_update
from daedalus.algos.td3 import TD3Config, make_td3_agent, td3_update


def measure(algo: str, hidden: list[int] | None, closed_form: bool) -> tuple[float, float]:
    """``(median ms per update, page faults per update)``."""
    env = gym.make("Pendulum-v1")
    if algo == "sac":
        config: SACConfig | TD3Config = SACConfig(hidden_sizes=hidden or [256, 256], closed_form_gradients=closed_form)
        agent, update = make_sac_agent(env.observation_space, env.action_space, config, seed=0), sac_update
    else:
        config = TD3Config(hidden_sizes=hidden or [400, 300], closed_form_gradients=closed_form)
        agent, update = make_td3_agent(env.observation_space, env.action_space, config, seed=0), td3_update
    buffer = agent.make_buffer(100_000, 1)
    rng = np.random.default_rng(0)
    for _ in range(3_000):
        buffer.add(rng.normal(size=(1, 3)).astype(np.float32), rng.uniform(-1, 1, (1, 1)).astype(np.float32),
                   np.array([-1.0], np.float32), np.array([False]), np.array([False]))
    for _ in range(50):
        update(agent, buffer, config)  # type: ignore[arg-type]
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(200):
            update(agent, buffer, config)  # type: ignore[arg-type]
        times.append((time.perf_counter() - start) / 200 * 1e3)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 1_400
    return float(np.median(times)), faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="sac,td3")
    parser.add_argument("--hidden", default="", help="hidden sizes for both algorithms, e.g. 128,128 (default: the zoo's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the training loop does
    hidden = [int(h) for h in args.hidden.split(",")] if args.hidden else None
    for algo in args.algos.split(","):
        for closed_form in (True, False):
            ms, faults = measure(algo, hidden, closed_form)
            print(f"{algo} {'closed form' if closed_form else 'autograd   '} {args.threads} thread(s): {ms:6.2f} ms per gradient step, {faults:7.1f} page faults per step")


if __name__ == "__main__":
    main()
