"""The reports of linking and drift: :class:`Linking` and :class:`DriftReport`.

Made by :func:`fluid_bayes.upkeep.drift.link` and :func:`fluid_bayes.upkeep.drift.drift`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_FDR", "INTERVAL_PROB", "DriftReport", "Linking", "draw_summary", "interval"]

#: Largest posterior expected share of false flags among the flagged items.
DEFAULT_FDR = 0.05
#: Credible mass of the (equal-tailed) intervals reported here.
INTERVAL_PROB = 0.95


def interval(x: np.ndarray) -> tuple[float, float]:
    """Equal-tailed :data:`INTERVAL_PROB` interval of draws ``x``."""
    lo, hi = np.quantile(x, [(1 - INTERVAL_PROB) / 2, (1 + INTERVAL_PROB) / 2])
    return float(lo), float(hi)


def draw_summary(x: np.ndarray) -> dict[str, float]:
    """Mean and equal-tailed :data:`INTERVAL_PROB` interval of draws ``x``."""
    lo, hi = interval(x)
    return {"mean": float(np.mean(x)), "low": lo, "high": hi}


# ------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False)
class Linking:
    """Linking constants ``theta_old = A theta_new + B``, with their posterior draws.

    Attributes
    ----------
    A, B : numpy.ndarray
        One draw per paired draw (``A`` unitless, ``B`` in ability SD of the old scale).
    method : str
        ``"mean-sigma"`` or ``"stocking-lord"``.
    n_common : int
        Items in both banks (matched by id).
    anchors, excluded : tuple of str
        Items the constants come from; anchor candidates dropped by purification.
    purification : dict
        Its rule, rounds and whether the flagged set settled (empty if not purified).
    old_bank, new_bank : str
        ``config_hash`` of the two banks.
    old_draws, new_draws : numpy.ndarray
        Flattened ``(chain, draw)`` indices of each bank paired with ``A`` and ``B``.
    """

    A: np.ndarray
    B: np.ndarray
    method: str
    n_common: int
    anchors: tuple[str, ...]
    excluded: tuple[str, ...]
    purification: dict[str, Any]
    old_bank: str
    new_bank: str
    old_draws: np.ndarray
    new_draws: np.ndarray

    @property
    def A_mean(self) -> float:
        """Posterior mean of ``A``."""
        return float(np.mean(self.A))

    @property
    def B_mean(self) -> float:
        """Posterior mean of ``B`` (ability SD of the old scale)."""
        return float(np.mean(self.B))

    @property
    def A_interval(self) -> tuple[float, float]:
        """Equal-tailed 95 % interval of ``A``."""
        return interval(self.A)

    @property
    def B_interval(self) -> tuple[float, float]:
        """Equal-tailed 95 % interval of ``B``."""
        return interval(self.B)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: constants (mean, 95 % interval), anchors, provenance."""
        return {
            "method": self.method,
            "A": draw_summary(self.A),
            "B": draw_summary(self.B),
            "interval_prob": INTERVAL_PROB,
            "n_draws": int(len(self.A)),
            "n_common": int(self.n_common),
            "n_anchors": len(self.anchors),
            "anchors": list(self.anchors),
            "excluded": list(self.excluded),
            "purification": dict(self.purification),
            "old_bank": self.old_bank,
            "new_bank": self.new_bank,
        }

    def __str__(self) -> str:
        (alo, ahi), (blo, bhi) = self.A_interval, self.B_interval
        rounds = self.purification.get("rounds")
        purified = f" after {rounds} purification round(s)" if rounds else ""
        return (
            f"{self.method} linking of bank {self.new_bank} onto {self.old_bank} "
            f"(theta_old = A theta_new + B, {len(self.A)} draws)\n"
            f"  A = {self.A_mean:.3f} [{alo:.3f}, {ahi:.3f}], "
            f"B = {self.B_mean:+.3f} [{blo:+.3f}, {bhi:+.3f}] (95 % intervals)\n"
            f"  {len(self.anchors)} anchors of {self.n_common} common items, "
            f"{len(self.excluded)} excluded{purified}"
        )


@dataclass(frozen=True, eq=False)
class DriftReport:
    """Per-item drift between two banks, on the old bank's scale.

    Attributes
    ----------
    linking : Linking
        The constants that put the new bank on the old scale.
    table : pandas.DataFrame
        One row per common item, ranked by ``p_drift`` descending: ``item``,
        ``delta_a_mean`` (``a_linked - a_old``), ``delta_b_mean`` (ability SD),
        ``delta_log_a_mean``, ``p_drift`` (either change beyond its threshold),
        ``p_drift_a``, ``p_drift_b`` (each alone), ``drifted``, ``expected_false`` and
        ``expected_fdp`` (the expected number and share of false flags if this row and
        every row above it were flagged) and the 95 % intervals ``delta_b_low/high`` and
        ``delta_log_a_low/high``.
    only_old, only_new : tuple of str
        Items found in one bank only (not tested).
    threshold_b, threshold_log_a : float
        The practical thresholds of the drift rule.
    prob : float or None
        The per-item rule ``p_drift > prob`` when it was asked for, else ``None``.
    fdr : float or None
        The bound on the expected share of false flags (``None`` under ``prob``).
    """

    linking: Linking
    table: pd.DataFrame
    only_old: tuple[str, ...]
    only_new: tuple[str, ...]
    threshold_b: float
    threshold_log_a: float
    prob: float | None
    fdr: float | None = DEFAULT_FDR

    @property
    def n_common(self) -> int:
        """Items in both banks."""
        return len(self.table)

    @property
    def n_drifted_a(self) -> int:
        """Flagged items whose discrimination more likely than not moved (``p_drift_a > 0.5``)."""
        return int((self.table["drifted"] & (self.table["p_drift_a"] > 0.5)).sum())

    @property
    def n_drifted_b(self) -> int:
        """Flagged items whose difficulty more likely than not moved (``p_drift_b > 0.5``)."""
        return int((self.table["drifted"] & (self.table["p_drift_b"] > 0.5)).sum())

    @property
    def n_drifted(self) -> int:
        """Items flagged as drifted (in either parameter)."""
        return int(self.table["drifted"].sum())

    @property
    def drifted_items(self) -> tuple[str, ...]:
        """Ids of drifted items, most certain first (e.g. to exclude from sessions)."""
        return tuple(self.table.loc[self.table["drifted"], "item"])

    @property
    def expected_false(self) -> float:
        """Posterior expected number of false flags, ``sum(1 - p_drift)`` over the flagged."""
        return float((1.0 - self.table.loc[self.table["drifted"], "p_drift"]).sum())

    @property
    def p_reached(self) -> float | None:
        """Smallest ``p_drift`` among the flagged items (``None`` when none is flagged)."""
        flagged = self.table.loc[self.table["drifted"], "p_drift"]
        return float(flagged.min()) if len(flagged) else None

    def _rule_text(self) -> str:
        either = (f"P(|delta b| > {self.threshold_b:g} or |delta log a| > "
                  f"{self.threshold_log_a:.3g})")  # fmt: skip
        if self.prob is not None:
            return f"{either} > {self.prob:g} per item (no multiplicity control)"
        return f"the most probable by {either} with expected false-flag share <= {self.fdr:g}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able report: ``linking``, rule, counts, one-bank items and ``items``."""
        keys = ("delta_a_mean", "delta_b_mean", "p_drift", "p_drift_a", "p_drift_b")
        items = [
            {"item": str(r.item), **{k: float(getattr(r, k)) for k in keys},
             "drifted": bool(r.drifted)}
            for r in self.table.itertuples(index=False)
        ]  # fmt: skip
        n = self.n_drifted
        return {
            "linking": self.linking.to_dict(),
            "rule": {"threshold_b": self.threshold_b, "threshold_log_a": self.threshold_log_a,
                     "fdr": self.fdr, "prob": self.prob},
            "counts": {"n_common": self.n_common, "n_drifted_a": self.n_drifted_a,
                       "n_drifted_b": self.n_drifted_b, "n_drifted": n,
                       "n_only_old": len(self.only_old), "n_only_new": len(self.only_new)},
            "expected_false": self.expected_false,
            "expected_fdp": self.expected_false / n if n else 0.0,
            "p_reached": self.p_reached,
            "only_in_old": list(self.only_old),
            "only_in_new": list(self.only_new),
            "items": items,
        }  # fmt: skip

    def __str__(self) -> str:
        n, reached = self.n_drifted, self.p_reached
        lines = [
            f"item drift: {n} of {self.n_common} common items drifted "
            f"({self.n_drifted_b} in b, {self.n_drifted_a} in a): {self._rule_text()}",
            f"  expected false flags {self.expected_false:.2f}"
            + (f" (share {self.expected_false / n:.3f}), smallest P flagged {reached:.3f}"
               if n else "")
            + f"; {len(self.only_old)} items only in the old bank, "
            f"{len(self.only_new)} only in the new",
            "  " + str(self.linking).replace("\n", "\n  "),
            "  item                      delta b  delta a  P      P(b)   P(a)   E[FDP]",
        ]  # fmt: skip
        for r in self.table.head(max(10, n)).itertuples(index=False):
            mark = "  drifted" if r.drifted else ""
            lines.append(f"  {str(r.item)[:24]:<24} {r.delta_b_mean:+8.3f} {r.delta_a_mean:+8.3f}"
                         f"  {r.p_drift:.3f}  {r.p_drift_b:.3f}  {r.p_drift_a:.3f}"
                         f"  {r.expected_fdp:.3f}{mark}")  # fmt: skip
        return "\n".join(lines)


# ------------------------------------------------------------ bank plumbing
