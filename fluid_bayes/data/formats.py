"""The input layouts :func:`~fluid_bayes.data.readers.read_responses` reads.

Pure Python, so the command line lists them (``--format``) without importing pandas.
"""

from __future__ import annotations

__all__ = ["FORMATS"]

#: ``format=`` values of :func:`~fluid_bayes.data.readers.read_responses`
FORMATS: tuple[str, ...] = (
    "auto", "wide", "long", "pyirt", "fb", "patterns", "lm-eval",
    "inspect", "lighteval", "helm", "eee",
)  # fmt: skip
