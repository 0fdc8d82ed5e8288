"""Running mean / standard deviation for observation normalization.

The statistics are part of the agent's state (saved with the weights): a policy trained on
normalized observations is meaningless without them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RunningMeanStd"]


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al. parallel update), float64."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4, clip: float = 10.0) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        # Starting at a tiny pseudo-count avoids a division by zero on the first batch.
        self.count = float(epsilon)
        self.clip = float(clip)
        self.epsilon = 1e-8

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch (first axis: samples) into the statistics."""
        batch = np.asarray(batch, dtype=np.float64)
        self.update_moments(batch.mean(axis=0), batch.var(axis=0), batch.shape[0])

    def update_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: int) -> None:
        """Fold in a batch given by its mean, (population) variance and size (e.g. a remote worker's)."""
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * (batch_count / total)
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * (self.count * batch_count / total)
        self.var = m2 / total
        self.count = total

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """``(obs - mean) / std``, clipped to ``[-clip, clip]``, as float32."""
        scaled = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save (the count rides along as a 0-d array)."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": np.asarray(self.count)}

    def load(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state` (accepts numpy arrays or torch tensors)."""
        self.mean = np.asarray(state["mean"], dtype=np.float64).copy()
        self.var = np.asarray(state["var"], dtype=np.float64).copy()
        self.count = float(np.asarray(state["count"]).reshape(-1)[0])
