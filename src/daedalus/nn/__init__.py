"""Networks, action distributions and observation normalization."""

from daedalus.nn.distributions import (
    ActionDistribution,
    Categorical,
    DiagGaussian,
    MultiCategorical,
    action_dim,
    to_env_actions,
)
from daedalus.nn.networks import ACTIVATIONS, ActorCritic, layer_init, mlp
from daedalus.nn.normalization import RunningMeanStd

__all__ = [
    "ACTIVATIONS",
    "ActionDistribution",
    "ActorCritic",
    "Categorical",
    "DiagGaussian",
    "MultiCategorical",
    "RunningMeanStd",
    "action_dim",
    "layer_init",
    "mlp",
    "to_env_actions",
]
