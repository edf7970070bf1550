"""Exceptions raised by fluid_bayes, all in one place.

Every error that comes from the user's input names the problem precisely: the file,
the row (1-based line number for text files), the subject or item id.
"""

from __future__ import annotations

__all__ = [
    "BankError",
    "ConvergenceError",
    "DataError",
    "FluidBayesError",
    "OptionError",
]


class FluidBayesError(Exception):
    """Base class of every error raised on purpose by fluid_bayes."""


class DataError(FluidBayesError, ValueError):
    """Input data is malformed: the message names the file, row and item or subject."""


class BankError(FluidBayesError, ValueError):
    """An item-bank file is of another format or version, or is inconsistent."""


class OptionError(FluidBayesError, ValueError):
    """An option is out of range, or the work it asks for cannot fit in memory."""


class ConvergenceError(FluidBayesError, RuntimeError):
    """A fit missed the convergence criteria and ``strict=True`` was asked for."""
