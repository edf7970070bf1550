"""The paper's evaluation metrics (Hofmann et al. 2025, section 4.2).

Pure functions on score vectors, then :func:`summarize` over a tidy results table.

- Validity: mean rank distance ``mean |rank(score) - rank(reference)|`` over the
  evaluated subjects, and the Spearman correlation with the reference. Ties get average
  ranks (``scipy.stats.rankdata``), so a method that gives two models the same score is
  not credited with an arbitrary order.
- Variance: total variation of a training curve,
  ``TV = n / (n - 1) * sum |x_{t+1} - x_t| / |x_n - x_1|`` over its ``n``
  checkpoints (its minimum, ``n / (n - 1)``, for a monotone curve; larger when noisy).
  Undefined when ``x_n == x_1`` or ``n < 2``: returned as NaN with the reason, never a
  division by zero.
- Saturation: monotonicity ``|Spearman(checkpoint index, score)|``. Undefined for fewer
  than two checkpoints or a constant score.
- Mislabels: mislabeled items administered per session.

Undefined values are NaN in the tables; :func:`summarize` averages the defined ones and
counts the undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "METRICS",
    "MetricValue",
    "mean_rank_distance",
    "monotonicity",
    "spearman",
    "summarize",
    "total_variation",
]

METRICS: tuple[str, ...] = (
    "validity_rank_distance",
    "validity_spearman",
    "variance_tv",
    "monotonicity",
    "mislabels_per_session",
)


@dataclass(frozen=True)
class MetricValue:
    """A metric's value, or NaN with the reason it is undefined."""

    value: float
    reason: str = ""

    @property
    def defined(self) -> bool:
        """Whether the value is a number."""
        return bool(np.isfinite(self.value))


def _vector(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {v.shape}")
    if np.isnan(v).any():
        raise ValueError(f"{name} has {int(np.isnan(v).sum())} NaN value(s)")
    return v


def total_variation(x: Sequence[float] | np.ndarray) -> MetricValue:
    """Total variation of a training curve (lower is better; ``n/(n-1)`` if monotone).

    Parameters
    ----------
    x : array-like
        Scores at the checkpoints, in training order.

    Returns
    -------
    MetricValue
        ``n / (n - 1) * sum |x_{t+1} - x_t| / |x_n - x_1|``; NaN with a reason when
        there are fewer than two checkpoints or the curve ends where it starts.
    """
    v = _vector(x, "x")
    if v.size < 2:
        return MetricValue(np.nan, f"{v.size} checkpoint(s): needs at least 2")
    span = abs(v[-1] - v[0])
    if span == 0.0:
        return MetricValue(np.nan, "first and last checkpoint score equal: TV undefined")
    n = v.size
    return MetricValue(n / (n - 1) * float(np.abs(np.diff(v)).sum()) / span)


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> MetricValue:
    """Spearman rank correlation (average ranks for ties); NaN if undefined."""
    u, v = _vector(x, "x"), _vector(y, "y")
    if u.size != v.size:
        raise ValueError(f"x and y differ in length ({u.size} and {v.size})")
    if u.size < 2:
        return MetricValue(np.nan, f"{u.size} value(s): needs at least 2")
    if np.ptp(u) == 0 or np.ptp(v) == 0:
        return MetricValue(np.nan, "a constant input has no ranking")
    ru, rv = stats.rankdata(u), stats.rankdata(v)
    return MetricValue(float(np.corrcoef(ru, rv)[0, 1]))


def monotonicity(x: Sequence[float] | np.ndarray) -> MetricValue:
    """``|Spearman(checkpoint index, score)|`` over a run's checkpoints (higher is better)."""
    v = _vector(x, "x")
    r = spearman(np.arange(v.size), v)
    return MetricValue(abs(r.value), r.reason) if r.defined else r


def mean_rank_distance(
    score: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray
) -> MetricValue:
    """Mean ``|rank by score - rank by reference|`` (average ranks for ties; lower is better).

    Ranks are descending (rank 1 = best); the distance does not depend on the direction
    as long as both use the same one.
    """
    u, v = _vector(score, "score"), _vector(reference, "reference")
    if u.size != v.size:
        raise ValueError(f"score and reference differ in length ({u.size} and {v.size})")
    if u.size == 0:
        return MetricValue(np.nan, "no subjects")
    return MetricValue(float(np.abs(stats.rankdata(-u) - stats.rankdata(-v)).mean()))


# -- over a results table ---------------------------------------------------------------

_KEYS = ["method", "budget", "repeat"]


def _per_group(results: pd.DataFrame, reference: pd.Series | None) -> pd.DataFrame:
    """One row per (metric, method, budget, repeat[, run]) with value and reason."""
    rows: list[dict] = []
    for (method, budget, repeat), g in results.groupby(_KEYS, sort=False):
        key = {"method": method, "budget": budget, "repeat": repeat}
        if reference is not None:
            g_ref = g[g["subject"].isin(reference.index)]
            ref = reference.loc[g_ref["subject"]].to_numpy(float)
            for name, fn in (("validity_rank_distance", mean_rank_distance),
                             ("validity_spearman", spearman)):  # fmt: skip
                mv = fn(g_ref["score"].to_numpy(float), ref)
                rows.append({**key, "metric": name, "run": "", "value": mv.value,
                             "reason": mv.reason, "n_subjects": len(g_ref)})  # fmt: skip
        curves = g.dropna(subset=["run"])  # subjects outside any series: no curve metrics
        for run, r in curves.groupby("run", sort=False):
            x = r.sort_values("step")["score"].to_numpy(float)
            for name, fn in (("variance_tv", total_variation), ("monotonicity", monotonicity)):
                mv = fn(x)
                rows.append({**key, "metric": name, "run": run, "value": mv.value,
                             "reason": mv.reason, "n_subjects": len(r)})  # fmt: skip
        if "n_mislabeled" in g:
            rows.append({**key, "metric": "mislabels_per_session", "run": "",
                         "value": float(g["n_mislabeled"].mean()), "reason": "",
                         "n_subjects": len(g)})  # fmt: skip
    return pd.DataFrame(rows, columns=_DETAIL_COLUMNS)


_DETAIL_COLUMNS = ["method", "budget", "repeat", "metric", "run", "value", "reason", "n_subjects"]


def summarize(
    results: pd.DataFrame,
    *,
    reference: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute every metric from a tidy results table.

    Parameters
    ----------
    results : pandas.DataFrame
        One row per scored subject: ``subject, run, step, method, budget, repeat,
        score`` and optionally ``n_mislabeled`` (mislabeled items administered).
        Rows with no ``run`` (NaN) are not part of a training curve: they count for
        validity and mislabels only.
    reference : pandas.Series, optional
        External score per subject (index subject ids) for validity. Subjects without a
        reference are left out of validity only.

    Returns
    -------
    detail : pandas.DataFrame
        One row per metric, method, budget, repeat (and run for the per-run metrics):
        ``value`` (NaN when undefined) and ``reason``.
    summary : pandas.DataFrame
        ``metric, method, budget, value, median, sd, n, n_undefined``: ``value`` is the
        mean over runs and repeats of the defined values (the paper's aggregate),
        ``median`` their median (TV divides by a run's net change, so one run that
        ends almost where it started can dominate the mean), ``sd`` the SD over repeats
        of the per-repeat means (NaN with a single repetition, e.g. deterministic
        methods).
    """
    missing = {"subject", "run", "step", "method", "budget", "repeat", "score"} - set(results)
    if missing:
        raise ValueError(f"results table lacks column(s) {sorted(missing)}")
    for col in ("method", "budget", "repeat", "score"):
        if results[col].isna().any():
            raise ValueError(f"results table has missing values in column {col!r}")
    detail = _per_group(results, reference)
    rows = []
    for (metric, method, budget), g in detail.groupby(["metric", "method", "budget"],
                                                      sort=False):  # fmt: skip
        ok = g[np.isfinite(g["value"])]
        per_repeat = ok.groupby("repeat")["value"].mean()
        rows.append({
            "metric": metric, "method": method, "budget": budget,
            "value": float(ok["value"].mean()) if len(ok) else np.nan,
            "median": float(ok["value"].median()) if len(ok) else np.nan,
            "sd": float(per_repeat.std(ddof=1)) if len(per_repeat) > 1 else np.nan,
            "n": len(ok), "n_undefined": len(g) - len(ok),
        })  # fmt: skip
    order = {m: k for k, m in enumerate(METRICS)}
    summary = pd.DataFrame(
        rows, columns=["metric", "method", "budget", "value", "median", "sd", "n", "n_undefined"]
    )
    if len(summary):
        summary = summary.sort_values("metric", key=lambda s: s.map(order), kind="stable")
        summary = summary.reset_index(drop=True)
    return detail, summary
