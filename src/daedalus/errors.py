"""Errors that Daedalus reports to users as one clear paragraph.

Every error a user can fix (a broken profile, an unknown id, a missing optional
package, a corrupt checkpoint) is a :class:`DaedalusError`. The CLI prints its
message without a traceback; Python users can catch it.
"""

from __future__ import annotations


class DaedalusError(Exception):
    """Base class of every user-facing error: the message says what is wrong and how to fix it."""


class ProfileError(DaedalusError):
    """A profile file or value is invalid."""


class RegistryError(DaedalusError):
    """An agent, environment or wrapper id (or a ``pkg.mod:Obj`` reference) cannot be resolved."""


class UserCodeError(DaedalusError):
    """User code (a module listed in ``.daedalus.yaml`` or a referenced file) raised while importing."""


class RunError(DaedalusError):
    """A run folder or checkpoint is missing or unreadable."""


class MissingDependencyError(DaedalusError):
    """An optional package is needed for the requested feature."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the optional package '{package}', which is not installed. "
            f"Install it with: pip install 'daedalus[{extra}]' -c constraints.txt"
        )
        self.package = package
        self.extra = extra


def closest(word: str, choices: list[str] | tuple[str, ...] | set[str], n: int = 3) -> list[str]:
    """The choices closest to ``word`` (case-insensitive), best first."""
    import difflib

    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """A ' Did you mean 'x'?' suffix, or an empty string when nothing is close."""
    hits = closest(word, choices, n=1)
    return f" Did you mean '{hits[0]}'?" if hits else ""
