"""Shared fixtures: every test runs in its own working directory, with no stray project file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DAEDALUS_PROGRESS", "plain")
# Every finished run draws plots/ (about 0.4 s each, plus matplotlib's import); the suite trains
# hundreds of runs, so only the tests about plots turn it back on.
os.environ.setdefault("DAEDALUS_PLOTS", "0")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (dedented) and return the path."""
    import textwrap

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path
