"""Allowed values of options, declared once and checked by the library and the CLI.

A configuration dataclass (:class:`~fluid_bayes.adaptive.options.SessionConfig`,
:class:`~fluid_bayes.calibration.options.SamplerOptions`) puts in each field's metadata
its ``help`` text and either its ``choices`` or a :class:`Range`; its ``__post_init__``
calls :func:`check_fields`, and the command line builds each flag from the same field:
argparse ``type=`` from :meth:`Range.parse`, so ``--draws 0`` and ``draws=0`` are refused
with the same words. Pure Python: importing this module loads nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from fluid_bayes.exceptions import OptionError

__all__ = ["COUNT", "SEED", "THRESHOLD", "Range", "check_fields", "option"]


@dataclass(frozen=True)
class Range:
    """The values an int or float option accepts.

    Attributes
    ----------
    kind : {int, float}
        Integers (bools refused) or finite real numbers (NaN and infinities refused).
    low, high : float, optional
        Bounds; ``None`` leaves that side open-ended.
    low_open, high_open : bool
        Exclude the bound itself (``> low`` rather than ``>= low``).
    words : tuple of str
        Strings accepted as they are besides numbers (e.g. ``"auto"``).
    optional : bool
        ``None`` is accepted (the option's "not set").
    cap : bool
        ``high`` is a limit of the implementation (a C integer), named in a message
        only to a value above it.
    """

    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    words: tuple[str, ...] = ()
    optional: bool = False
    cap: bool = False

    def describe(self, value: Any = None) -> str:
        """The accepted values in words, e.g. ``"an integer >= 1"``.

        ``value``, the refused one, decides whether a :attr:`cap` is named.
        """
        noun = "an integer" if self.kind is int else "a finite number"
        if self.cap and self.high is not None:
            above = isinstance(value, numbers.Real) and value > self.high
            if above:
                return f"{noun} <= {_fmt(self.high)}"
            return dataclasses.replace(self, high=None, cap=False).describe()
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{noun} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
        elif self.low is not None:
            text = f"{noun} {'>' if self.low_open else '>='} {_fmt(self.low)}"
        elif self.high is not None:
            text = f"{noun} {'<' if self.high_open else '<='} {_fmt(self.high)}"
        else:
            text = noun
        return " or ".join([text, *(repr(w) for w in self.words)])

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (already converted) is accepted."""
        if value is None:
            return self.optional
        if isinstance(value, str):
            return value in self.words
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (
            value > self.high or (self.high_open and value == self.high)
        )

    def check(self, value: Any, *, name: str) -> Any:
        """Return ``value`` if accepted, else raise ``OptionError`` naming ``name``."""
        if not self.contains(value):
            raise OptionError(f"{name} must be {self.describe(value)}, got {value!r}")
        return value

    def parse(self, text: str) -> Any:
        """Convert a command-line word and check it.

        Returns
        -------
        int, float or str
            The number (of :attr:`kind`), or the word itself when it is in :attr:`words`.

        Raises
        ------
        OptionError
            ``"must be <describe()>, got '<text>'"``.
        """
        if text in self.words:
            return text
        try:
            value = self.kind(text.strip())
        except (TypeError, ValueError):
            value = None
        if value is None or not self.contains(value):
            raise OptionError(f"must be {self.describe(value)}, got {text!r}")
        return value


def _fmt(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


#: counts of draws, tuning steps, chains, items, runs: at least 1 (and a C int)
COUNT = Range(int, 1, 2**31 - 1, cap=True)
#: random seeds: non-negative, at most 2**63 - 1
SEED = Range(int, 0, 2**63 - 1, cap=True)
#: binarization thresholds of scores in [0, 1]: a score >= threshold counts as correct
THRESHOLD = Range(float, 0.0, 1.0, low_open=True, optional=True)


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with ``default`` and its metadata.

    The metadata keys read here and by the command line: ``help``; ``range`` (a
    :class:`Range`) or ``choices`` (with ``what``, the noun of the error message);
    ``metavar``.

    Returns
    -------
    dataclasses.Field
    """
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def check_fields(obj: Any) -> None:
    """Check every field of the dataclass ``obj`` against its ``range`` or ``choices``.

    Raises
    ------
    OptionError
        A ``ValueError`` naming the first field whose value is not accepted, and what
        it accepts.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if "range" in f.metadata:
            f.metadata["range"].check(value, name=f.name)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            if value is None and f.metadata.get("optional"):
                continue
            what = f.metadata.get("what", f.name)
            raise OptionError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")
