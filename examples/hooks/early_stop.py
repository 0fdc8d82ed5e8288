"""An early-stopping hook: end training once a periodic evaluation reaches a mean return.

Listed in a profile as ``callbacks: [{ref: early_stop.py:StopAtReturn, args: {mean_return: 475}}]``
(a class is instantiated with ``args`` for each run); the run then ends ``completed`` with
``stop_reason`` in its run.json.
"""

from __future__ import annotations

from daedalus.hooks import EvalEnd


class StopAtReturn:
    """Stop when an evaluation's mean return reaches ``mean_return``; counts evaluations meanwhile."""

    def __init__(self, mean_return: float = 475.0) -> None:
        self.mean_return = mean_return
        self.evaluations = 0

    def on_eval(self, info: EvalEnd) -> str | None:
        """A reason to stop, or None to go on."""
        self.evaluations += 1
        if info.mean_return >= self.mean_return:
            return f"evaluation {self.evaluations} reached a mean return of {info.mean_return:.1f} at step {info.step}"
        return None
