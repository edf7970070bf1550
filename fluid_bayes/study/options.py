"""Vocabulary of the paper's experiment: its methods and default budgets.

Pure Python, so the command line lists them (``experiment --methods``, ``--budgets``)
without importing the experiment; :mod:`fluid_bayes.study.experiment` re-exports both.
"""

from __future__ import annotations

__all__ = ["DEFAULT_BUDGETS", "EXPERIMENT_METHODS"]

#: the methods :func:`~fluid_bayes.study.experiment.run_experiment` compares
EXPERIMENT_METHODS: tuple[str, ...] = (
    "full-accuracy",
    "full-ability",
    "random",
    "random-irt",
    "fluid",
    "fluid-bayes",
)
#: items per session (capped at the bank size)
DEFAULT_BUDGETS: tuple[int, ...] = (10, 20, 50, 100, 200, 500)
