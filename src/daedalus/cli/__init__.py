"""The ``daedalus`` command line (see :mod:`daedalus.cli.main`)."""

from daedalus.cli.main import app, main

__all__ = ["app", "main"]
