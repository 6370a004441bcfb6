"""The ``poisonguard`` command: ``main`` is the console script (see :mod:`poisonguard.cli.main`)."""

from poisonguard.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
