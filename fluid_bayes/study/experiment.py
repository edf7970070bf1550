"""The paper's comparison of scoring methods over training runs (Hofmann et al. 2025).

Every subject (a checkpoint of a run) has answered the whole bank; each method scores it
from a budget of ``n`` items, and :mod:`fluid_bayes.study.metrics` turns the scores into
validity, variance, monotonicity and mislabel counts.

Methods (scores are accuracy in [0, 1] or ability on the bank's scale):

- ``full-accuracy``: share correct over every answered bank item;
- ``full-ability``: the paper's MAP ability (point estimates, N(prior) prior, range
  [-4, 4]) from every answered item;
- ``random``: accuracy on a random subset of ``n`` items;
- ``random-irt``: MAP ability from the same subset;
- ``fluid``: the paper's adaptive procedure (MAP + maximum Fisher information on point
  estimates), ability after ``n`` items;
- ``fluid-bayes``: posterior-expected information and the Bayesian ability (posterior
  mean over the bank's draws), after ``n`` items; its posterior SD is kept.

Comparison: with a ``baseline`` method (default ``fluid``, the paper's, when it is run),
every other method's difference from it in each metric and budget comes with a paired
bootstrap interval over the training runs (:func:`fluid_bayes.study.metrics.paired_bootstrap`):
``ExperimentResult.comparison``, the columns ``baseline, diff, diff_low, diff_high`` of
the summary and the ``"<method> - <baseline>"`` rows of :meth:`ExperimentResult.table2`.

Random subsets: one random order of the bank per repetition, shared by every run and
checkpoint (a static small benchmark, as a practitioner would use one), nested across
budgets (the first ``n`` items). A subject without an answer to an item of the subset
skips it and takes the next one of the order. The adaptive methods are deterministic: run
once, to the largest budget, and read at each budget (with no SD stopping rule, a session
of ``n`` items asks exactly the first ``n`` items of a longer one).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zlib import crc32

import numpy as np
import pandas as pd

from fluid_bayes.adaptive.ability import map_ability
from fluid_bayes.adaptive.replay import align_to_bank, observed_accuracy, replay
from fluid_bayes.adaptive.selection import BankArrays
from fluid_bayes.adaptive.workers import Workers, check_workers, using_workers
from fluid_bayes.data.responses import ResponseMatrix
from fluid_bayes.exceptions import DataError
from fluid_bayes.study.metrics import BOOTSTRAP_PROB, METRICS, paired_bootstrap, summarize
from fluid_bayes.study.options import DEFAULT_BUDGETS, EXPERIMENT_METHODS

__all__ = [
    "DEFAULT_BUDGETS",
    "EXPERIMENT_METHODS",
    "ExperimentResult",
    "run_experiment",
]

_FULL = ("full-accuracy", "full-ability")
_ADAPTIVE = {"fluid": "paper", "fluid-bayes": "bayes"}


@dataclass(frozen=True)
class ExperimentResult:
    """Scores and metrics of one experiment.

    Attributes
    ----------
    results : pandas.DataFrame
        Tidy: one row per ``subject, method, budget, repeat`` with ``run, step, score,
        theta_sd`` (ability methods; NaN otherwise), ``n_items`` (items actually used)
        and, with item labels, ``n_mislabeled`` and ``n_labeled`` (administered items
        labeled mislabeled / with any label). Full methods have ``budget`` = bank size.
    items : pandas.DataFrame
        Items the adaptive methods administered: ``subject, method, position, item,
        a_point, b_point`` (the item's posterior-mean parameters).
    detail, summary : pandas.DataFrame
        From :func:`fluid_bayes.study.metrics.summarize`.
        The summary also has ``baseline, diff, diff_low, diff_high`` (from
        ``comparison``; NaN for the baseline and methods not compared).
    notes : tuple of str
        What was capped, left out or could not be scored, and why.
    config : dict
        Methods, budgets, repeats, seed, bank hash, timings, baseline, bootstrap.
    comparison : pandas.DataFrame
        From :func:`fluid_bayes.study.metrics.paired_bootstrap`: per metric, method and
        budget the difference from the baseline and its paired bootstrap interval
        (empty without a baseline).
    """

    results: pd.DataFrame
    items: pd.DataFrame
    detail: pd.DataFrame
    summary: pd.DataFrame
    notes: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)

    def table2(self) -> pd.DataFrame:
        """The summary shaped like the paper's Table 2.

        Rows ``(metric, method)``, columns the budgets (full methods under ``"full"``),
        cells the mean value. With a comparison, each compared method adds three rows
        per metric: ``"<method> - <baseline>"`` (the difference),
        ``"... low"`` and ``"... high"`` (its paired bootstrap interval).
        """
        s = self.summary.copy()
        full = s["method"].isin(_FULL)
        s["column"] = np.where(full, "full", s["budget"].astype(str))
        wide = s.pivot_table(index=["metric", "method"], columns="column", values="value",
                             aggfunc="first", sort=False)  # fmt: skip
        budgets = [str(b) for b in self.config.get("budgets", [])]
        cols = [c for c in budgets if c in wide.columns] + (["full"] if "full" in wide else [])
        metric_order = [m for m in METRICS if m in wide.index.get_level_values(0)]
        method_order = [m for m in EXPERIMENT_METHODS if m in wide.index.get_level_values(1)]
        index = pd.MultiIndex.from_tuples(
            [(m, k) for m in metric_order for k in method_order if (m, k) in wide.index],
            names=["metric", "method"],
        )
        table = wide.reindex(index=index, columns=cols)
        c = self.comparison
        if c.empty:
            return table
        rows = {}
        for metric in metric_order:
            for method in method_order:
                g = c[(c["metric"] == metric) & (c["method"] == method)]
                if g.empty:
                    continue
                name = f"{method} - {g['baseline'].iloc[0]}"
                for col, suffix in (("diff", ""), ("diff_low", " low"), ("diff_high", " high")):
                    vals = dict(zip(g["budget"].astype(str), g[col], strict=True))
                    rows[(metric, name + suffix)] = [vals.get(k, np.nan) for k in cols]
        extra = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
        extra.index = pd.MultiIndex.from_tuples(extra.index, names=["metric", "method"])
        return pd.concat([table, extra])

    def save(self, out: str | Path, *, figures: bool = True) -> dict[str, Path]:
        """Write the tables, the configuration and (``figures``) the plots to ``out``.

        Files: ``results.parquet``, ``items.parquet``, ``summary.csv``, ``table2.csv``,
        ``detail.csv``, ``experiment.json`` and PNG figures. Returns name -> path.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "results": out / "results.parquet",
            "items": out / "items.parquet",
            "summary": out / "summary.csv",
            "table2": out / "table2.csv",
            "detail": out / "detail.csv",
            "config": out / "experiment.json",
        }
        self.results.to_parquet(paths["results"], index=False)
        self.items.to_parquet(paths["items"], index=False)
        self.summary.to_csv(paths["summary"], index=False)
        self.table2().to_csv(paths["table2"])
        self.detail.to_csv(paths["detail"], index=False)
        paths["config"].write_text(
            json.dumps({**self.config, "notes": list(self.notes)}, indent=2, default=str)
        )
        if figures:
            from fluid_bayes.study import plots

            paths.update(plots.save_experiment_figures(self, out))
        return paths


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t0 = enabled, time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def _check_inputs(data, series, reference, labels, methods, budgets, n_items):
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods repeat: {methods}")
    unknown = [m for m in methods if m not in EXPERIMENT_METHODS]
    if unknown:
        raise ValueError(
            f"unknown method(s) {unknown}; choose from {', '.join(EXPERIMENT_METHODS)}"
        )
    if not methods:
        raise ValueError("no methods given")
    budgets = [int(b) for b in budgets]
    if not budgets or min(budgets) < 1:
        raise ValueError(f"budgets must be positive integers, got {budgets}")
    notes = []
    capped = sorted({b for b in budgets if b > n_items})
    if capped:
        notes.append(f"budget(s) {capped} exceed the bank's {n_items} items: capped at {n_items}")
    budgets = sorted({min(b, n_items) for b in budgets})
    lack = [s for s in data.subjects if s not in series.index]
    if lack:
        raise DataError(f"no run/step for subject(s) {lack[:5]}")
    if reference is not None:
        no_ref = [s for s in data.subjects if s not in reference.index]
        if len(no_ref) == data.n_subjects:
            raise DataError("no subject of the data has a reference score")
        if no_ref:
            notes.append(f"{len(no_ref)} subject(s) have no reference score and are left out "
                         f"of validity: {', '.join(no_ref[:5])}")  # fmt: skip
        bad = reference[~np.isfinite(reference.astype(float))]
        if len(bad):
            raise DataError(f"reference score of {bad.index[0]!r} is not a number")
    has_series = series["run"].notna().any()
    if reference is None and labels is None and not has_series:
        raise ValueError("no metric applies: give a checkpoint series (variance, "
                         "monotonicity), a reference (validity) or item labels")  # fmt: skip
    return budgets, notes


def _label_vector(labels: pd.Series, items: tuple[str, ...], notes: list[str]) -> np.ndarray:
    """Labels aligned to the bank (NaN = unknown); labels of other items are reported."""
    known = labels.dropna()
    in_bank = known[known.index.isin(items)]
    if in_bank.empty:
        raise DataError(f"none of the {len(known)} labeled item(s) is in the bank (item ids "
                        f"such as {', '.join(map(repr, known.index[:3]))})")  # fmt: skip
    outside = len(known) - len(in_bank)
    notes.append(f"item labels known for {len(in_bank)} bank item(s) ({int(in_bank.sum())} "
                 "mislabeled); mislabels count the administered ones"
                 + (f"; {outside} labeled item(s) not in the bank" if outside else ""))  # fmt: skip
    return labels.reindex(list(items)).to_numpy(dtype=float)


def run_experiment(
    bank,
    data: ResponseMatrix,
    *,
    series: pd.DataFrame | None = None,
    reference: pd.Series | None = None,
    labels: pd.Series | None = None,
    methods: Sequence[str] = EXPERIMENT_METHODS,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    repeats: int = 5,
    seed: int = 0,
    prior_mean: float = 0.0,
    prior_sd: float = 1.0,
    arrays: BankArrays | None = None,
    progress: bool = False,
    workers: int | str | Workers = 1,
    scheduler: str | None = None,
    baseline: str | None = "fluid",
    bootstrap: int = 1000,
) -> ExperimentResult:
    """Score every subject by every method and budget, then compute the metrics.

    Parameters
    ----------
    bank : ItemBank
        Calibrated (or simulated) bank.
    data : ResponseMatrix
        Full answers of every checkpoint; items matched to the bank by id.
    series : pandas.DataFrame, optional
        Index subject; ``run`` and ``step`` (:func:`fluid_bayes.data.series.checkpoint_series`).
        Without it the subjects are unrelated models: no training-curve metrics.
    reference : pandas.Series, optional
        External score per subject for validity (e.g. accuracy on a paired benchmark).
    labels : pandas.Series, optional
        Per item id: True (mislabeled), False (clean), NaN (unknown), for
        ``mislabels_per_session``.
    methods : sequence of str
        From :data:`EXPERIMENT_METHODS`.
    budgets : sequence of int
        Items per session; capped at the bank size (noted).
    repeats : int
        Repetitions of the random methods (different subsets).
    seed : int
        Seeds the random subsets (same seed, same results).
    prior_mean, prior_sd : float
        Ability prior of every IRT method.
    arrays : BankArrays, optional
        Precomputed bank arrays (and tables).
    progress : bool
        Print progress to stderr.
    workers : int, "auto" or Workers
        Worker processes the adaptive sessions are spread over (1: here, serially; see
        :class:`~fluid_bayes.adaptive.workers.Workers`); one pool serves every method.
        The results are the same whatever the workers.
    scheduler : str, optional
        Address of an existing Dask scheduler to send the sessions to.
    baseline : str, optional
        The method every other is compared with by a paired bootstrap over runs
        (default ``fluid``, the paper's; skipped when it is not among ``methods``;
        ``None``: no comparison).
    bootstrap : int
        Resamples of the comparison (>= 10), seeded by ``seed``.

    Returns
    -------
    ExperimentResult
    """
    say = _Progress(progress)
    if not isinstance(workers, Workers):
        check_workers(workers, scheduler)  # before any work
    if series is None:
        series = pd.DataFrame({"run": np.nan, "step": np.nan}, index=list(data.subjects))
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    budgeted = [m for m in EXPERIMENT_METHODS if m not in _FULL]
    if baseline is not None and baseline not in budgeted:
        raise ValueError(f"unknown baseline {baseline!r}; choose from {', '.join(budgeted)}")
    if bootstrap < 10:
        raise ValueError(f"bootstrap must be >= 10 resamples, got {bootstrap}")
    arrays = arrays or BankArrays.from_bank(bank)
    budgets, notes = _check_inputs(data, series, reference, labels, list(methods), budgets,
                                   arrays.n_items)  # fmt: skip
    answers, report = align_to_bank(arrays.items, data)
    if report.extra_items:
        notes.append(f"{len(report.extra_items)} item(s) of the data are not in the bank "
                     f"and were ignored: {', '.join(report.extra_items[:5])}")  # fmt: skip
    if report.missing:
        notes.append(f"{len(report.missing)} subject(s) lack answers to some bank items; "
                     "those items are never used for them")  # fmt: skip
    lab = None if labels is None else _label_vector(labels, arrays.items, notes)
    answered = ~np.isnan(answers)
    n_all = answered.sum(axis=1)
    empty = [s for s, n in zip(data.subjects, n_all, strict=True) if n == 0]
    if empty:
        raise DataError(f"{len(empty)} subject(s) answered no item of the bank: "
                        f"{', '.join(empty[:5])}")  # fmt: skip
    subjects = list(data.subjects)
    meta = series.loc[subjects, ["run", "step"]]
    frames, item_frames, timings = [], [], {}
    prior = {"prior_mean": prior_mean, "prior_sd": prior_sd}

    def add(method, budget, repeat, score, theta_sd, n_used, used_mask):
        f = pd.DataFrame({"subject": subjects, "run": meta["run"].to_numpy(),
                          "step": meta["step"].to_numpy(), "method": method,
                          "budget": budget, "repeat": repeat, "score": score,
                          "theta_sd": theta_sd, "n_items": n_used})  # fmt: skip
        if lab is not None:
            f["n_mislabeled"] = (used_mask & (lab == 1.0)).sum(axis=1)
            f["n_labeled"] = (used_mask & ~np.isnan(lab)).sum(axis=1)
        frames.append(f)

    nan = np.full(len(subjects), np.nan)

    def score(method, pool):  # one method's rows (and items), added to the tables
        t0 = time.perf_counter()
        say(f"{method}: {len(subjects)} subjects")
        if method == "full-accuracy":
            add(method, arrays.n_items, 0, observed_accuracy(answers), nan, n_all, answered)
        elif method == "full-ability":
            est = np.array([map_ability(answers[k], arrays.a_point, arrays.b_point, **prior)
                            for k in range(len(subjects))])  # fmt: skip
            add(method, arrays.n_items, 0, est[:, 0], est[:, 1], n_all, answered)
        elif method in ("random", "random-irt"):
            for r in range(repeats):
                order = np.random.default_rng([seed, r, crc32(b"random")]).permutation(
                    arrays.n_items
                )
                rank = np.cumsum(answered[:, order], axis=1)  # answered items so far, in order
                for n in budgets:
                    used = np.zeros_like(answered)
                    used[:, order] = answered[:, order] & (rank <= n)
                    n_used = used.sum(axis=1)
                    if method == "random":
                        score = np.where(used, answers, 0.0).sum(axis=1) / np.maximum(n_used, 1)
                        add(method, n, r, np.where(n_used > 0, score, np.nan), nan, n_used, used)
                    else:
                        est = np.array([
                            map_ability(np.where(used[k], answers[k], np.nan), arrays.a_point,
                                        arrays.b_point, **prior)
                            for k in range(len(subjects))])  # fmt: skip
                        add(method, n, r, est[:, 0], est[:, 1], n_used, used)
                say(f"{method}: repeat {r + 1}/{repeats} done")
        else:  # adaptive
            res = _adaptive(bank, data, arrays, _ADAPTIVE[method], max(budgets), prior, say,
                            method, pool)  # fmt: skip
            pos = {i: j for j, i in enumerate(arrays.items)}
            for n in budgets:
                score, sd, n_used = (np.empty(len(subjects)) for _ in range(3))
                used = np.zeros_like(answered)
                for k, r in enumerate(res):
                    m = min(n, len(r.steps))
                    last = r.steps[m - 1]
                    score[k], sd[k], n_used[k] = last.theta_mean, last.theta_sd, m
                    used[k, [pos[s.item] for s in r.steps[:m]]] = True
                add(method, n, 0, score, sd, n_used, used)
            short = [r.subject for r in res if len(r.steps) < max(budgets)]
            if short:
                notes.append(f"{method}: {len(short)} subject(s) ran out of answered items "
                             f"before {max(budgets)} (scored at their last item): "
                             f"{', '.join(short[:5])}")  # fmt: skip
            f = pd.DataFrame(
                [(r.subject, method, j + 1, s.item) for r in res for j, s in enumerate(r.steps)],
                columns=["subject", "method", "position", "item"])  # fmt: skip
            j = f["item"].map(pos).to_numpy()
            f["a_point"], f["b_point"] = arrays.a_point[j], arrays.b_point[j]
            item_frames.append(f)
        timings[method] = round(time.perf_counter() - t0, 2)
        say(f"{method}: done in {timings[method]:.1f} s")

    with using_workers(workers, scheduler, log=say) as pool:  # one pool for every method
        for method in methods:
            score(method, pool)
    results = pd.concat(frames, ignore_index=True)
    bad = results[~np.isfinite(results["score"])]
    if len(bad):
        row = bad.iloc[0]
        raise DataError(f"{row['method']}: no score for subject {row['subject']!r} at "
                        f"budget {row['budget']} (no answered items)")  # fmt: skip
    detail, summary = summarize(results, reference=reference)
    comparison = pd.DataFrame()
    if baseline is not None and baseline in methods:
        others = [m for m in methods if m != baseline and m not in _FULL]
        comparison = paired_bootstrap(results, detail, baseline=baseline, reference=reference,
                                      methods=others, n_boot=bootstrap, seed=seed)  # fmt: skip
        keys = ["metric", "method", "budget"]
        summary = summary.merge(comparison.drop(columns="n_units"), on=keys, how="left")
        say(f"paired bootstrap against {baseline}: {bootstrap} resamples")
    items = (pd.concat(item_frames, ignore_index=True) if item_frames else
             pd.DataFrame(columns=["subject", "method", "position", "item", "a_point",
                                   "b_point"]))  # fmt: skip
    config = {"methods": list(methods), "budgets": budgets, "repeats": repeats, "seed": seed,
              "prior_mean": prior_mean, "prior_sd": prior_sd, "bank": bank.config_hash,
              "n_items": arrays.n_items, "n_draws": arrays.n_draws,
              "n_subjects": len(subjects), "n_runs": int(meta["run"].nunique()),
              "seconds": timings, "baseline": None if comparison.empty else baseline,
              "bootstrap": bootstrap, "bootstrap_prob": BOOTSTRAP_PROB}  # fmt: skip
    return ExperimentResult(results, items, detail, summary, tuple(notes), config, comparison)


def _adaptive(bank, data, arrays, preset, max_items, prior, say, label, pool):
    """Replay sessions of ``preset`` to ``max_items`` with no SD stopping, on ``pool``."""
    options = {"max_items": max_items, "min_items": 0, "stop_sd": None, **prior}

    def progress(done, total):
        say(f"{label}: {done}/{total} subjects")

    res = replay(bank, data, method=preset, arrays=arrays, workers=pool, progress=progress,
                 **options)  # fmt: skip
    return list(res.results)
