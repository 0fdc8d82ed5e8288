"""Test data for the off-policy algorithms (imported by the unit tests next to it)."""

from __future__ import annotations

from typing import Any

import numpy as np


def fill_replay(agent: Any, steps: int = 60, capacity: int = 500, seed: int = 0) -> Any:
    """A 2-row replay buffer of ``agent`` with ``steps`` random steps: row 0 terminates every 17 steps,
    row 1 is truncated every 13 (so both kinds of episode end are sampled)."""
    buffer = agent.make_buffer(capacity, 2)
    rng = np.random.default_rng(seed)
    for t in range(steps):
        buffer.add(rng.normal(size=(2, agent.obs_dim)).astype(np.float32), rng.uniform(-1, 1, (2, agent.action_dim)), rng.normal(size=2),
                   np.array([t % 17 == 0, False]), np.array([False, t % 13 == 0]), rng.normal(size=(2, agent.obs_dim)).astype(np.float32))
    return buffer
