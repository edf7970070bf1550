"""What validation did to, and noticed about, a response matrix: :class:`DataReport`.

Also the one definition of a constant item (:func:`constant_columns`) and the id
formatting shared by every data error message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DataReport",
    "build_report",
    "constant_columns",
    "duplicates",
    "show_ids",
]

_SHOW = 10  # how many ids an error message or report lists before "... and N more"


def show_ids(ids: Sequence[str], limit: int = _SHOW) -> str:
    """Format ids for a message: the first ``limit`` ones, then a count of the rest.

    Parameters
    ----------
    ids : sequence of str
        Item or subject ids.
    limit : int
        How many to list.

    Returns
    -------
    str
        The first ``limit`` ids quoted (``repr``) and comma-separated, then
        ``" ... and N more (M in all)"`` when there are more.
    """
    shown = ", ".join(repr(i) for i in ids[:limit])
    if len(ids) > limit:
        shown += f" ... and {len(ids) - limit} more ({len(ids)} in all)"
    return shown


@dataclass(frozen=True)
class DataReport:
    """What validation did to, and noticed about, the input data.

    Attributes
    ----------
    source : str
        Where the data came from (a file path, or ``"array"``).
    threshold : float or None
        The binarization threshold recorded (values ``>= threshold`` became 1), or
        None when the data was already 0/1 and no threshold was given.
    n_binarized : int
        How many cells held a continuous score (not exactly 0 or 1) and were binarized.
    n_missing : int
        Missing (NaN) cells in the final matrix.
    constant_correct : tuple of str
        Items every subject who answered them got right (kept).
    constant_wrong : tuple of str
        Items every subject who answered them got wrong (kept).
    dropped_subjects : tuple of str
        Subjects with no answer at all; they were dropped from the matrix.
    notes : tuple of str
        Any other human-readable report lines (from readers or metadata joins).
    dropped_items : tuple of str
        Items removed on request (:meth:`ResponseMatrix.without_constant_items`).
    """

    source: str
    threshold: float | None
    n_binarized: int
    n_missing: int
    constant_correct: tuple[str, ...]
    constant_wrong: tuple[str, ...]
    dropped_subjects: tuple[str, ...]
    notes: tuple[str, ...] = ()
    dropped_items: tuple[str, ...] = ()

    def __str__(self) -> str:
        """Return a readable multi-line report."""
        lines = [f"Data report for {self.source}"]
        if self.threshold is None:
            lines.append("  scores: binary (0/1), no threshold applied")
        else:
            lines.append(
                f"  threshold: {self.threshold:g} (score >= threshold is correct);"
                f" {self.n_binarized} continuous cell(s) binarized"
            )
        lines.append(f"  missing cells: {self.n_missing}")
        for label, ids in (
            ("items all correct", self.constant_correct),
            ("items all wrong", self.constant_wrong),
            ("subjects dropped (no answers)", self.dropped_subjects),
        ):
            lines.append(f"  {label}: {len(ids)}" + (f" ({show_ids(ids)})" if ids else ""))
        if self.dropped_items:
            ids = self.dropped_items
            lines.append(f"  items dropped (constant): {len(ids)} ({show_ids(ids)})")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-able dict (tuples become lists)."""
        return {
            "source": self.source,
            "threshold": self.threshold,
            "n_binarized": int(self.n_binarized),
            "n_missing": int(self.n_missing),
            "constant_correct": list(self.constant_correct),
            "constant_wrong": list(self.constant_wrong),
            "dropped_subjects": list(self.dropped_subjects),
            "notes": list(self.notes),
            "dropped_items": list(self.dropped_items),
        }


def constant_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the all-correct and the all-wrong items among those anyone answered.

    ``values`` is subjects x items with NaN for missing answers.
    """
    observed = ~np.isnan(values)
    n_obs = observed.sum(axis=0)
    n_right = np.where(observed, values, 0.0).sum(axis=0)
    answered = n_obs > 0
    return np.flatnonzero(answered & (n_right == n_obs)), np.flatnonzero(answered & (n_right == 0))


def _constant_items(values: np.ndarray, items: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Return (all-correct, all-wrong) items among the items anyone answered."""
    right, wrong = constant_columns(values)
    return tuple(items[j] for j in right), tuple(items[j] for j in wrong)


def build_report(
    values: np.ndarray,
    items: Sequence[str],
    *,
    source: str,
    threshold: float | None,
    n_binarized: int,
    dropped: tuple[str, ...],
    notes: tuple[str, ...],
) -> DataReport:
    """Build the :class:`DataReport` of a validated value array.

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(n_subjects, n_items)``: 0/1, NaN for no answer.
    items : sequence of str
        The item ids of the columns.
    source, threshold, n_binarized, dropped, notes
        The report's fields of the same names (``dropped``: ``dropped_subjects``).

    Returns
    -------
    DataReport
        With the missing-answer count and the constant items found in ``values``.
    """
    right, wrong = _constant_items(values, items)
    return DataReport(
        source=source,
        threshold=threshold,
        n_binarized=int(n_binarized),
        n_missing=int(np.isnan(values).sum()),
        constant_correct=right,
        constant_wrong=wrong,
        dropped_subjects=dropped,
        notes=tuple(notes),
    )


def duplicates(ids: Sequence[str]) -> list[str]:
    """Return the ids appearing more than once, each once, in first-seen order.

    Parameters
    ----------
    ids : sequence of str
        Item or subject ids.

    Returns
    -------
    list of str
        The repeated ids (empty when all are distinct).
    """
    counts = Counter(ids)
    return [i for i in dict.fromkeys(ids) if counts[i] > 1]
