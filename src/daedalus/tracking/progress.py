"""The live progress display that training code updates.

Training wrappers call ``context.progress.update(steps=..., episodes=..., last_return=...)``
or, without a context, :func:`report`. On a terminal a rich live line is shown; when
stdout is not a terminal (CI, ``batch --parallel``, a pipe) a plain log line is printed
every few seconds instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Steps, episodes, last and mean return, steps/s, plus any extra numbers."""

    def __init__(
        self,
        label: str,
        total_steps: int | None = None,
        stream: TextIO | None = None,
        live: bool | None = None,
        interval_s: float = 5.0,
        logger: Any = None,
    ) -> None:
        self.label = label
        #: Where :func:`report` also logs the numbers it is given (the run's metric logger).
        self.logger = logger
        self.total_steps = total_steps
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.interval_s = interval_s
        self.steps = 0
        #: Steps done before this session (a resumed run): not counted in steps/s.
        self.start_steps = 0
        self.episodes = 0
        self.last_return: float | None = None
        self.recent_returns: list[float] = []
        self.extra: dict[str, float] = {}
        self.started = time.perf_counter()
        self._last_print = self.started
        self._rich: Any = None

    def start(self) -> Progress:
        """Begin displaying (a rich Live on terminals)."""
        self.started = time.perf_counter()
        self._last_print = self.started
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._rich = Live(self._render(), console=Console(file=self.stream), refresh_per_second=4, transient=False)
            self._rich.start()
        return self

    def update(
        self,
        steps: int | None = None,
        episodes: int | None = None,
        last_return: float | None = None,
        **extra: float,
    ) -> None:
        """Report the latest counters; any keyword becomes an extra column."""
        if steps is not None:
            self.steps = int(steps)
        if episodes is not None:
            self.episodes = int(episodes)
        if last_return is not None:
            self.last_return = float(last_return)
            self.recent_returns.append(self.last_return)
            del self.recent_returns[:-100]
        self.extra.update(extra)
        now = time.perf_counter()
        if self._rich is not None:
            self._rich.update(self._render())
        elif now - self._last_print >= self.interval_s:
            self._last_print = now
            print(self.line(), file=self.stream, flush=True)

    @property
    def steps_per_second(self) -> float:
        """Average steps per second since :meth:`start`."""
        elapsed = time.perf_counter() - self.started
        return (self.steps - self.start_steps) / elapsed if elapsed > 0 else 0.0

    @property
    def mean_return(self) -> float | None:
        """Mean of the last 100 reported returns."""
        return sum(self.recent_returns) / len(self.recent_returns) if self.recent_returns else None

    def line(self) -> str:
        """The progress as one plain text line."""
        total = f"/{self.total_steps}" if self.total_steps else ""
        parts = [f"[{self.label}] steps {self.steps}{total}", f"episodes {self.episodes}"]
        if self.last_return is not None:
            parts.append(f"return {self.last_return:.2f} (mean {self.mean_return:.2f})")
        parts.append(f"{self.steps_per_second:,.0f} steps/s")
        parts.extend(f"{k} {_fmt(v)}" for k, v in self.extra.items())
        return " | ".join(parts)

    def _render(self) -> Any:
        from rich.text import Text

        return Text(self.line())

    def stop(self) -> None:
        """Stop the live display (prints the final line when not live)."""
        if self._rich is not None:
            self._rich.update(self._render())
            self._rich.stop()
            self._rich = None
        else:
            print(self.line(), file=self.stream, flush=True)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


_ACTIVE: list[Progress] = []


def report(
    steps: int | None = None,
    episodes: int | None = None,
    last_return: float | None = None,
    **extra: float,
) -> None:
    """Update the progress display of the run in progress (a no-op outside a run).

    Training wrappers without a ``context`` use this. A finished episode's return
    (``last_return``) and any extra numbers are also logged to the run's ``metrics.csv``
    and TensorBoard events at the current step.
    """
    if not _ACTIVE:
        return
    progress = _ACTIVE[-1]
    progress.update(steps=steps, episodes=episodes, last_return=last_return, **extra)
    if progress.logger is not None and (last_return is not None or extra):
        row = dict(extra)
        if last_return is not None:
            row["episode_return"] = float(last_return)
            row["episodes"] = float(progress.episodes)
        progress.logger.log(progress.steps, row)
