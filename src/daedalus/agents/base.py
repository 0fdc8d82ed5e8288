"""The agent contract, as Protocols.

An :class:`Agent` maps observations to actions and turns itself into bytes and back
(Crete's contract). Built-in agents are :class:`TensorAgent` s: their state is a dict of
tensors plus a JSON-able dict, stored as safetensors + JSON so that nothing is ever
unpickled.

Both are ``typing.Protocol`` classes with default method bodies: an agent may subclass one
(and inherit the defaults: ``super().__init__(name)`` works) or simply have the methods.
Concrete agents sit one level below a Protocol, never deeper (docs/architecture.md).
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from daedalus.types import ExtraState


class Agent(Protocol):
    """What every agent run by Daedalus has (subclass it for the defaults below).

    Subclasses implement :meth:`get_action`, and :meth:`save` / :meth:`load` to be
    checkpointed. ``save`` may use any format (pickle included): Daedalus stores the
    bytes as given and hands them back to the same agent class's ``load``.
    """

    #: A short name for logs (the constructor's default sets it).
    name: str

    def __init__(self, name: str = "agent") -> None:
        self.name = name

    def get_action(self, obs: Any, extra_state: ExtraState = None) -> tuple[Any, ExtraState]:
        """Return ``(action, extra_state)`` for one observation."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_action()")

    def save(self) -> bytes:
        """Serialize the policy data to bytes."""
        raise NotImplementedError(f"{type(self).__name__} does not implement save()")

    def load(self, agent_data: bytes) -> None:
        """Restore the policy data written by :meth:`save`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load()")


STATE_KEY = "daedalus_state"


@runtime_checkable
class TensorAgent(Agent, Protocol):
    """An agent whose state is named tensors plus JSON: checkpointed as safetensors + ``state.json``.

    Subclasses implement :meth:`state_tensors`, :meth:`state_json` and :meth:`load_state`;
    ``save``/``load`` to bytes come for free (one safetensors blob whose metadata holds
    the JSON state), so Crete-style tools that only know bytes still work.
    """

    def state_tensors(self) -> dict[str, Any]:
        """Named tensors (torch tensors or numpy arrays): weights, optimizer moments, statistics."""
        raise NotImplementedError

    def state_json(self) -> dict[str, Any]:
        """Everything else, JSON-serializable: config, counters, RNG states."""
        return {}

    def load_state(self, tensors: dict[str, Any], state: dict[str, Any]) -> None:
        """Restore from :meth:`state_tensors` / :meth:`state_json` output (tensors come back as torch)."""
        raise NotImplementedError

    def predict(self, obs: Any, deterministic: bool = True) -> Any:
        """Actions for a batch of observations (first axis is the batch)."""
        raise NotImplementedError

    def get_action(self, obs: Any, extra_state: ExtraState = None) -> tuple[Any, ExtraState]:
        """One observation in, one action out (through :meth:`predict` on a batch of one)."""
        import numpy as np

        action = self.predict(np.asarray(obs)[None], deterministic=True)
        return action[0], extra_state

    def save(self) -> bytes:
        """One safetensors blob; the JSON state rides in its metadata."""
        from safetensors.torch import save

        return save(to_torch(self.state_tensors()), metadata={STATE_KEY: json.dumps(self.state_json())})

    def load(self, agent_data: bytes) -> None:
        """Inverse of :meth:`save`."""
        from safetensors.torch import load

        tensors = load(agent_data)
        state = json.loads(_metadata_from_bytes(agent_data).get(STATE_KEY, "{}"))
        self.load_state(tensors, state)


def to_torch(tensors: dict[str, Any]) -> dict[str, Any]:
    """Make every value a contiguous CPU torch tensor (numpy arrays are converted)."""
    import numpy as np
    import torch

    out = {}
    for key, value in tensors.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = value.detach().to("cpu").contiguous()
    return out


def _metadata_from_bytes(blob: bytes) -> dict[str, str]:
    """Read the ``__metadata__`` of a safetensors blob without copying tensors."""
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + header_len])
    return dict(header.get("__metadata__") or {})
