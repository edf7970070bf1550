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

:func:`paired_bootstrap` compares two methods: the difference of each metric's mean at
each budget, with a bootstrap interval over training runs (series), each resample
shared by both methods (paired).

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
    "BOOTSTRAP_PROB",
    "BOOTSTRAP_RESAMPLES",
    "bootstrap_indices",
    "paired_bootstrap",
    "paired_differences",
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


# -- paired comparison -------------------------------------------------------------------

#: bootstrap resamples and interval mass of :func:`paired_bootstrap`
BOOTSTRAP_RESAMPLES, BOOTSTRAP_PROB = 1000, 0.90
_RUN_METRICS = ("variance_tv", "monotonicity")
_SUBJECT_METRICS = {"validity_rank_distance": mean_rank_distance, "validity_spearman": spearman}


def bootstrap_indices(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """The resamples of :func:`paired_bootstrap`: ``(n_boot, n_units)`` unit indices.

    Drawn with replacement from ``numpy.random.default_rng([seed, n_units])``.
    """
    rng = np.random.default_rng([int(seed), int(n_units)])
    return rng.integers(0, n_units, size=(int(n_boot), int(n_units)))


def _run_table(detail: pd.DataFrame, metric: str, method: str, budget, units) -> np.ndarray:
    """Per unit (run) the metric averaged over repeats (NaN where undefined)."""
    d = detail[(detail["metric"] == metric) & (detail["method"] == method)
               & (detail["budget"] == budget)]  # fmt: skip
    per = d.groupby("run")["value"].mean()
    return per.reindex(units).to_numpy(float)


def _multiset_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of ``values`` (n,) in weighted multisets, one per row: (B, n).

    Row ``b``'s multiset holds value ``i`` ``weights[b, i]`` times. The ranks are those
    of ``scipy.stats.rankdata`` (ties share the mean of their positions) on the
    expanded vector of each row, without expanding it.
    """
    order = np.argsort(values, kind="stable")
    v = values[order]
    w = weights[:, order]
    starts = np.flatnonzero(np.concatenate([[True], v[1:] != v[:-1]]))  # tie groups
    group = np.add.reduceat(w, starts, axis=1)
    rank = np.cumsum(group, axis=1) - group + (group + 1.0) / 2.0
    out = np.empty_like(w)
    out[:, order] = np.repeat(rank, np.diff(np.append(starts, v.size)), axis=1)
    return out


def _multiset_metric(metric: str, score: np.ndarray, ref: np.ndarray, w: np.ndarray):
    """``metric`` (of :data:`_SUBJECT_METRICS`) of each row's multiset: (B,).

    Row ``b`` holds subject ``i`` ``w[b, i]`` times; the values equal those of
    :func:`mean_rank_distance` and :func:`spearman` on the expanded vectors (NaN where
    those are undefined), to rounding.
    """
    n = w.sum(axis=1)
    ru, rv = _multiset_ranks(score, w), _multiset_ranks(ref, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "validity_rank_distance":  # descending ranks: the same distances
            return np.where(n > 0, (w * np.abs(ru - rv)).sum(axis=1) / n, np.nan)
        mid = (n + 1.0)[:, None] / 2.0  # the mean of average ranks
        cu, cv = ru - mid, rv - mid
        cov, vu, vv = ((w * x * y).sum(axis=1) for x, y in ((cu, cv), (cu, cu), (cv, cv)))
        rho = cov / np.sqrt(vu * vv)
    present = w > 0

    def constant(x):
        lo = np.where(present, x[None, :], np.inf).min(axis=1)
        return lo == np.where(present, x[None, :], -np.inf).max(axis=1)

    return np.where((n < 2) | constant(score) | constant(ref), np.nan, rho)


def _subject_metric(results, reference, metric, method, budget, unit_of, idx, n_units):
    """The metric over the subjects of each resample of units, averaged over repeats.

    ``idx`` (B, U) resamples units; row 0 of the returned (B + 1,) is the observed value.
    Each resample is a multiset of subjects (a unit drawn twice counts twice), scored
    for every resample at once (:func:`_multiset_metric`).
    """
    g = results[(results["method"] == method) & (results["budget"] == budget)
                & results["subject"].isin(reference.index)]  # fmt: skip
    counts = np.zeros((idx.shape[0], n_units))
    np.add.at(counts, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), 1.0)
    out = np.zeros(idx.shape[0] + 1)
    reps = g.groupby("repeat", sort=True)
    for _, r in reps:
        unit = r["subject"].map(unit_of).to_numpy(float)
        score = r["score"].to_numpy(float)
        ref = reference.loc[r["subject"]].to_numpy(float)
        known = ~np.isnan(unit)
        w = np.zeros((idx.shape[0] + 1, unit.size))
        w[0] = 1.0  # the observed value: every subject once
        w[1:, known] = counts[:, unit[known].astype(np.int64)]
        out += _multiset_metric(metric, score, ref, w)
    return out / reps.ngroups


def paired_differences(
    results: pd.DataFrame,
    detail: pd.DataFrame,
    *,
    baseline: str,
    reference: pd.Series | None = None,
    methods: Sequence[str] | None = None,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Each method's difference from ``baseline`` per metric and budget, per resample.

    The units resampled are the training runs (series) of ``results``, or the subjects
    when no subject belongs to a run. One set of resamples
    (:func:`bootstrap_indices`) serves every method, budget and metric, so each
    difference is paired: both methods are scored on the same resampled runs.

    - ``variance_tv``, ``monotonicity``: per run, the value averaged over repeats
      (``detail``); a resample's mean is the mean over its runs of the defined values.
    - ``validity_rank_distance``, ``validity_spearman``: recomputed over the subjects of
      the resampled runs (a run drawn twice counts twice), averaged over repeats.

    Parameters
    ----------
    results, detail : pandas.DataFrame
        The tidy results and the per-run metrics (:func:`summarize`).
    baseline : str
        The method every other is compared with.
    reference : pandas.Series, optional
        External scores (validity); without it no validity difference.
    methods : sequence of str, optional
        Methods to compare (default: every other method of ``results``).
    n_boot : int
        Resamples (>= 10).
    seed : int
        Seeds the resamples (same seed, same resamples).

    Returns
    -------
    pandas.DataFrame
        ``metric, method, baseline, budget, n_units, diff``: a (n_boot + 1,) array of
        ``method mean - baseline mean``, element 0 on the observed units, then one per
        resample.
    """
    if baseline not in set(results["method"]):
        raise ValueError(f"baseline method {baseline!r} is not among the results' methods")
    if n_boot < 10:
        raise ValueError(f"need n_boot >= 10, got {n_boot}")
    has_run = results["run"].notna() & (results["run"].astype(str) != "")
    by_run = bool(has_run.any())
    units = sorted(results.loc[has_run, "run"].astype(str).unique()) if by_run else sorted(
        results["subject"].unique())  # fmt: skip
    pos = {u: k for k, u in enumerate(units)}
    keys = results["run"].astype(str) if by_run else results["subject"]
    unit_of = {s: pos[u] for s, u in zip(results["subject"], keys, strict=True) if u in pos}
    idx = bootstrap_indices(len(units), n_boot, seed)
    budgets = sorted(results.loc[results["method"] == baseline, "budget"].unique())
    if methods is None:
        methods = [m for m in dict.fromkeys(results["method"]) if m != baseline]
    metrics = [m for m in _RUN_METRICS if by_run and m in set(detail["metric"])]
    if reference is not None:
        metrics += list(_SUBJECT_METRICS)

    def values(metric, method, budget):
        if metric in _RUN_METRICS:
            x = _run_table(detail, metric, method, budget, units)
            return np.concatenate([[np.nanmean(x)], np.nanmean(x[idx], axis=1)])
        return _subject_metric(results, reference, metric, method, budget, unit_of, idx,
                               len(units))  # fmt: skip

    rows = []
    for metric in metrics:
        for budget in budgets:
            base = values(metric, baseline, budget)
            for method in methods:
                if not ((results["method"] == method) & (results["budget"] == budget)).any():
                    continue
                rows.append({"metric": metric, "method": method, "baseline": baseline,
                             "budget": budget, "n_units": len(units),
                             "diff": values(metric, method, budget) - base})  # fmt: skip
    return pd.DataFrame(rows, columns=["metric", "method", "baseline", "budget", "n_units",
                                       "diff"])  # fmt: skip


def paired_bootstrap(
    results: pd.DataFrame,
    detail: pd.DataFrame,
    *,
    baseline: str,
    reference: pd.Series | None = None,
    methods: Sequence[str] | None = None,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    prob: float = BOOTSTRAP_PROB,
    seed: int = 0,
) -> pd.DataFrame:
    """Difference of each metric between each method and ``baseline``, with an interval.

    The paired resampled differences of :func:`paired_differences` (same arguments),
    summarized by the observed difference and the ``prob`` percentile interval.

    Returns
    -------
    pandas.DataFrame
        ``metric, method, baseline, budget, diff, diff_low, diff_high, n_units``:
        ``diff`` = method mean - baseline mean on the observed units (lower is better
        for ``variance_tv`` and ``validity_rank_distance``).
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"need 0 < prob < 1, got {prob}")
    d = paired_differences(results, detail, baseline=baseline, reference=reference,
                           methods=methods, n_boot=n_boot, seed=seed)  # fmt: skip
    q = [(1.0 - prob) / 2, (1.0 + prob) / 2]
    out = d.drop(columns="diff").copy()
    out["diff"] = [float(x[0]) for x in d["diff"]]
    bounds = np.array([np.nanquantile(x[1:], q) for x in d["diff"]]).reshape(-1, 2)
    out["diff_low"], out["diff_high"] = bounds[:, 0], bounds[:, 1]
    return out[["metric", "method", "baseline", "budget", "diff", "diff_low", "diff_high",
                "n_units"]]  # fmt: skip
