"""Sample storage: the on-policy rollout storage (GAE inside)."""

from daedalus.buffers.rollout import RolloutBatch, RolloutStorage, minibatch_indices

__all__ = ["RolloutBatch", "RolloutStorage", "minibatch_indices"]
