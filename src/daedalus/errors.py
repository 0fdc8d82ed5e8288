"""Errors that Daedalus reports to users as one clear paragraph.

Every error a user can fix (a broken profile, an unknown id, a missing optional
package, a corrupt checkpoint) is a :class:`DaedalusError`. The CLI prints its
message without a traceback; Python users can catch it.
"""

from __future__ import annotations


class DaedalusError(Exception):
    """Base class of every user-facing error: the message says what is wrong and how to fix it."""


class ProfileError(DaedalusError):
    """A profile file or value is invalid.

    ``problems`` lists every problem found (one line each, ``file:line: profile 'x': what. fix``);
    the message is the single problem, or all of them under a count.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


#: At most this many problems are listed in one error (the rest are counted).
MAX_PROBLEMS = 20


class Problems:
    """Collects the ProfileErrors of a validation pass, so that all are reported at once.

    ``with problems.collect(): ...`` records a ProfileError raised inside the block and
    carries on after it; :meth:`raise_if_any` raises one ProfileError listing them all.
    """

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, error: ProfileError | str) -> None:
        """Record a problem (a ProfileError, possibly holding several, or a message)."""
        for item in error.problems if isinstance(error, ProfileError) else [error]:
            if item not in self.items:
                self.items.append(item)

    def collect(self) -> _Collect:
        """A context manager that records a ProfileError raised inside it instead of raising it."""
        return _Collect(self)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise one ProfileError for everything recorded (nothing when empty)."""
        if not self.items:
            return
        if len(self.items) == 1:
            raise ProfileError(self.items[0])
        shown = self.items[:MAX_PROBLEMS]
        more = len(self.items) - len(shown)
        text = f"{len(self.items)} problems; fix them all, then run the command again:\n" + "\n".join(
            f"  - {item}" for item in shown
        )
        if more:
            text += f"\n  ... and {more} more"
        raise ProfileError(text, list(self.items))


class _Collect:
    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, ProfileError):
            self.problems.add(exc)
            return True
        return False


class RegistryError(DaedalusError):
    """An agent, environment or wrapper id (or a ``pkg.mod:Obj`` reference) cannot be resolved."""


class UserCodeError(DaedalusError):
    """User code (a module listed in ``.daedalus.yaml`` or a referenced file) raised while importing."""


class RunError(DaedalusError):
    """A run folder or checkpoint is missing or unreadable."""


class TrustError(DaedalusError):
    """Loading a run folder (or another file made elsewhere) would import code nobody trusted."""


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
