"""One vocabulary of dimension names and file-format constants, declared once."""

from __future__ import annotations

__all__ = [
    "BANK_FORMAT",
    "BANK_FORMAT_VERSION",
    "CHAIN",
    "DRAW",
    "GRID",
    "GROUP",
    "HDI_PROB",
    "ITEM",
    "SUBJECT",
]

CHAIN = "chain"
DRAW = "draw"
ITEM = "item"
SUBJECT = "subject"
GROUP = "group"
GRID = "theta_grid"

#: Credible mass of every interval the package reports (ArviZ's default, 94%).
HDI_PROB = 0.94

#: Identifies a saved item bank; loading any other file fails with a clear error.
BANK_FORMAT = "fluid-bayes-item-bank"
#: Bumped whenever the saved layout changes; a file of another version is refused.
BANK_FORMAT_VERSION = 1
