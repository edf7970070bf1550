"""The ``fluid-bayes`` command line, one module per command group.

:mod:`~fluid_bayes.cli.main` (parser, ``calibrate``, ``bank``, ``evaluate``),
:mod:`~.study` (``experiment``, ``simulate``, ``mislabels``), :mod:`~.upkeep` (``diagnose``,
``refit``, ``drift``), :mod:`~.demo` (``demo``).
"""

from fluid_bayes.cli.main import main

__all__ = ["main"]
