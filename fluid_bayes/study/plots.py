"""Figures of the paper's experiments (matplotlib).

- :func:`plot_training_curves`: each method's score along a run's checkpoints at one
  budget (accuracy methods on the accuracy scale, ability methods on the ability
  scale), with the Bayesian method's ±2 posterior SD band and the random methods'
  repetitions as separate lines;
- :func:`plot_metric_vs_budget`: every metric against the budget, one line per method,
  the full-benchmark methods as horizontal references;
- :func:`plot_items_over_training`: difficulties of the administered items at each
  checkpoint, with the ability estimate: the subset moves from easy to hard items as
  the model improves;
- :func:`plot_drift`: per-item change of difficulty and discrimination between two
  linked banks (:func:`fluid_bayes.upkeep.drift.drift`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fluid_bayes.study.metrics import METRICS

__all__ = [
    "plot_drift",
    "plot_items_over_training",
    "plot_metric_vs_budget",
    "plot_training_curves",
    "save_experiment_figures",
]

_FULL = ("full-accuracy", "full-ability")
_ACCURACY = ("full-accuracy", "random")
_COLORS = {
    "full-accuracy": "0.35",
    "full-ability": "0.0",
    "random": "tab:orange",
    "random-irt": "tab:red",
    "fluid": "tab:blue",
    "fluid-bayes": "tab:green",
}
_LOWER_BETTER = {"validity_rank_distance", "variance_tv", "mislabels_per_session"}


def _default_run(results: pd.DataFrame) -> str:
    runs = results["run"].dropna().unique()
    if not len(runs):
        raise ValueError("the results have no checkpoint series (no run)")
    return str(runs[0])


def _default_budget(results: pd.DataFrame) -> int:
    budgets = sorted(results.loc[~results["method"].isin(_FULL), "budget"].unique())
    if not budgets:
        raise ValueError("the results have no budgeted method")
    return int(budgets[min(1, len(budgets) - 1)])


def plot_training_curves(result, *, run: str | None = None, budget: int | None = None):
    """Scores along one run's checkpoints, one panel per method.

    Parameters
    ----------
    result : ExperimentResult
        From :func:`fluid_bayes.study.experiment.run_experiment`.
    run : str, optional
        Which run (default: the first).
    budget : int, optional
        Budget of the subset methods (default: the second smallest).

    Returns
    -------
    matplotlib.figure.Figure
    """
    res = result.results
    run = run or _default_run(res)
    budget = budget or _default_budget(res)
    r = res[res["run"] == run]
    if r.empty:
        raise ValueError(f"no run {run!r} in the results")
    methods = list(dict.fromkeys(r["method"]))
    ncol = min(3, len(methods))
    nrow = int(np.ceil(len(methods) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, method in zip(axes.flat, methods, strict=False):
        m = r[r["method"] == method]
        if method not in _FULL:
            m = m[m["budget"] == budget]
        full = r[r["method"] == ("full-accuracy" if method in _ACCURACY else "full-ability")]
        full = full.sort_values("step")
        ax.plot(full["step"], full["score"], color="0.6", lw=1, label="full benchmark")
        for rep, g in m.groupby("repeat"):
            g = g.sort_values("step")
            color = _COLORS.get(method, "tab:purple")
            ax.plot(g["step"], g["score"], color=color, lw=1.2, alpha=0.9 if rep == 0 else 0.35,
                    label=method if rep == 0 else None)  # fmt: skip
            if method == "fluid-bayes":
                lo, hi = g["score"] - 2 * g["theta_sd"], g["score"] + 2 * g["theta_sd"]
                ax.fill_between(g["step"], lo, hi, color=color, alpha=0.2, label="±2 posterior SD")
        title = method if method in _FULL else f"{method}, {budget} items"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy" if method in _ACCURACY else "ability (bank scale)")
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.flat[len(methods) :]:
        ax.set_visible(False)
    fig.suptitle(f"training curves of {run}", fontsize=11)
    fig.tight_layout()
    return fig


def plot_metric_vs_budget(result):
    """Each metric against the budget (log axis), one line per method.

    Random methods show the mean over repetitions with ±1 SD over repetitions.

    Returns
    -------
    matplotlib.figure.Figure
    """
    s = result.summary
    metrics = [m for m in METRICS if m in set(s["metric"])]
    if not metrics:
        raise ValueError("the summary has no metric")
    ncol = min(3, len(metrics))
    nrow = int(np.ceil(len(metrics) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.3 * nrow), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        g = s[s["metric"] == metric]
        for method, h in g.groupby("method", sort=False):
            color = _COLORS.get(method, "tab:purple")
            if method in _FULL:
                ax.axhline(h["value"].iloc[0], color=color, ls="--", lw=1, label=method)
                continue
            h = h.sort_values("budget")
            ax.errorbar(h["budget"], h["value"], yerr=h["sd"], color=color, marker="o", ms=3,
                        lw=1.2, capsize=2, label=method)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("items (budget)")
        better = "lower" if metric in _LOWER_BETTER else "higher"
        ax.set_title(f"{metric} ({better} is better)", fontsize=10)
    axes.flat[0].legend(fontsize=7)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_items_over_training(
    result, *, run: str | None = None, method: str = "fluid-bayes", budget: int | None = None
):
    """Difficulty of the items ``method`` administered at each checkpoint of ``run``.

    Dots: the first ``budget`` items of each checkpoint's session, at their
    posterior-mean difficulty; line: the checkpoint's ability estimate at that budget.

    Returns
    -------
    matplotlib.figure.Figure
    """
    res, items = result.results, result.items
    run = run or _default_run(res)
    budget = budget or _default_budget(res)
    r = res[(res["run"] == run) & (res["method"] == method) & (res["budget"] == budget)]
    if r.empty:
        raise ValueError(f"no {method!r} scores for run {run!r} at budget {budget}")
    steps = r.set_index("subject")["step"]
    it = items[(items["method"] == method) & items["subject"].isin(steps.index)
               & (items["position"] <= budget)]  # fmt: skip
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.scatter(it["subject"].map(steps), it["b_point"], s=4, alpha=0.25,
               c=it["position"], cmap="viridis", label="administered item")  # fmt: skip
    r = r.sort_values("step")
    ax.plot(r["step"], r["score"], color="k", lw=1.5, label=f"ability ({method})")
    ax.set_xlabel("training step")
    ax.set_ylabel("difficulty b / ability (bank scale)")
    ax.set_title(f"items chosen over training: {run}, {method}, {budget} items", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_drift(report, ax=None):
    """Change of difficulty against change of log discrimination, drifted items in red.

    Points are posterior means with 95 % intervals (ability SD on x, log scale on y);
    dashed lines mark the thresholds; the ten most certain drifted items are labelled.

    Parameters
    ----------
    report : DriftReport
        From :func:`fluid_bayes.upkeep.drift.drift`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    t = report.table
    for flag, color, label in ((False, "0.55", "stable"), (True, "C3", "drifted")):
        s = t[t["drifted"] == flag]
        if s.empty:
            continue
        x, y = s["delta_b_mean"].to_numpy(), s["delta_log_a_mean"].to_numpy()
        ax.errorbar(
            x, y,
            xerr=[x - s["delta_b_low"].to_numpy(), s["delta_b_high"].to_numpy() - x],
            yerr=[y - s["delta_log_a_low"].to_numpy(), s["delta_log_a_high"].to_numpy() - y],
            fmt="o", ms=3, lw=0.6, color=color, alpha=0.8 if flag else 0.4,
            label=f"{label} ({len(s)})",
        )  # fmt: skip
    for r in t[t["drifted"]].head(10).itertuples(index=False):
        ax.annotate(str(r.item), (r.delta_b_mean, r.delta_log_a_mean), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    for sign in (-1, 1):
        ax.axvline(sign * report.threshold_b, color="k", ls="--", lw=0.8)
        ax.axhline(sign * report.threshold_log_a, color="k", ls="--", lw=0.8)
    ax.set_xlabel("change of difficulty b (old ability SD)")
    ax.set_ylabel("change of log discrimination")
    ax.set_title(f"item drift: {report.n_drifted} of {report.n_common} common items")
    ax.legend(fontsize=8)
    return ax.figure


def save_experiment_figures(result, out: str | Path) -> dict[str, Path]:
    """Write the three figures (where the result has what they need) as PNG files."""
    out = Path(out)
    paths: dict[str, Path] = {}
    figs = {"metrics_vs_budget": lambda: plot_metric_vs_budget(result)}
    budgeted = (~result.results["method"].isin(_FULL)).any()
    if result.results["run"].notna().any() and budgeted:
        figs["training_curves"] = lambda: plot_training_curves(result)
        for method in ("fluid-bayes", "fluid"):
            if method in set(result.items["method"]):
                figs["items_over_training"] = lambda m=method: plot_items_over_training(
                    result, method=m
                )
                break
    for name, make in figs.items():
        fig = make()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=110)
        plt.close(fig)
    return paths
