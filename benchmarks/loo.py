"""Leave-one-model-out adaptive evaluation on the shipped real data.

For every fold bank (calibrated without one model): evaluate
the held-out model adaptively with each method for 30 items, and score it on all its
answers (``bayes`` estimator, the full-benchmark ability). Reports, per method, the
Spearman rank correlation across held-out models between the 30-item estimate and the
all-items ability, the mean absolute difference, and how often the 94% interval covers
the all-items ability. Writes ``benchmarks/results/loo_<dataset>.csv``.

    .venv/bin/python benchmarks/loo.py chembench            # fit missing folds, evaluate
    .venv/bin/python benchmarks/loo.py chembench --no-fit   # evaluate the folds there are

The folds: calibrate on the other models with reduced sampler settings (2 chains x 250
draws after 400 tuning steps, so a fold takes minutes on a 2-core machine; each bank
records its own diagnostics) for ``N_FOLDS`` held-out models spread evenly over the
accuracy ranking; banks are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from fluid_bayes import HierarchicalTwoPL, ItemBank, read_responses
from fluid_bayes.adaptive.replay import replay, score_all
from fluid_bayes.adaptive.selection import BankArrays
from fluid_bayes.cli.demo import DATA

METHODS = ("bayes", "paper", "eap", "random")
DATASETS = {
    "chembench": DATA / "chembench" / "responses.csv",
    "mmlu": DATA / "mmlu_redux_helm" / "responses.csv",
}
N_FOLDS = {"chembench": 8, "mmlu": 5}
#: MMLU-Redux (5,700 items) is replayed on a seeded random subset to keep folds short
ITEM_SUBSET = {"mmlu": 1000}


def load(name: str):
    """The dataset, restricted to its item subset (seeded) where one is set."""
    data = read_responses(DATASETS[name])
    if name in ITEM_SUBSET:
        rng = np.random.default_rng(0)
        keep = sorted(rng.choice(data.n_items, ITEM_SUBSET[name], replace=False))
        data = data.select(items=[data.items[k] for k in keep])
    return data


SETTINGS = {"draws": 250, "tune": 400, "chains": 2, "seed": 1}


def held_out(data, n: int) -> list[str]:
    """``n`` models spread evenly over the accuracy ranking (weakest to strongest)."""
    order = data.accuracy().sort_values().index.tolist()
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))
    return [order[k] for k in picks]


def fit_folds(name: str, n: int, cache: Path) -> None:
    """Fit (or reuse) the bank of every fold of ``name``."""
    data = load(name)
    for subject in held_out(data, n):
        path = cache / name / f"{subject.replace('/', '_')}.nc"
        if path.is_file():
            continue
        rest = data.select(subjects=[s for s in data.subjects if s != subject])
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bank = HierarchicalTwoPL().fit(rest, **SETTINGS)
        path.parent.mkdir(parents=True, exist_ok=True)
        bank.save(path)
        conv = bank.convergence
        print(
            f"{name} without {subject}: {time.perf_counter() - t0:.0f} s, "
            f"max R-hat {conv.max_rhat:.3f}, min ESS {conv.min_ess_bulk:.0f}, "
            f"divergences {conv.divergences}",
            flush=True,
        )


def evaluate(name: str, cache: Path, n_items: int = 30) -> pd.DataFrame:
    """One row per held-out model and method."""
    data = load(name)
    rows = []
    for path in sorted((cache / name).glob("*.nc")):
        bank = ItemBank.load(path)
        held = [s for s in data.subjects if s.replace("/", "_") == path.stem][0]
        one = data.select(subjects=[held])
        arrays = BankArrays.from_bank(bank)
        full = score_all(bank, one, arrays=arrays).iloc[0]
        conv = bank.convergence
        for method in METHODS:
            r = replay(bank, one, method=method, max_items=n_items, arrays=arrays, seed=1)
            res = r.results[0]
            rows.append({
                "model": held, "method": method, "theta_30": res.theta.mean,
                "sd_30": res.theta.sd, "low_30": res.theta.hdi_low, "high_30": res.theta.hdi_high,
                "theta_all": full["theta_mean"], "accuracy": full["observed_accuracy"],
                "fold_max_rhat": conv.max_rhat,
            })  # fmt: skip
    return pd.DataFrame(rows)


def report(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: Spearman(30-item, all-items), mean |difference|, interval coverage."""
    out = []
    for method, g in table.groupby("method", sort=False):
        rho = spearmanr(g["theta_30"], g["theta_all"]).statistic
        rho_acc = spearmanr(g["theta_30"], g["accuracy"]).statistic
        cover = ((g["low_30"] <= g["theta_all"]) & (g["theta_all"] <= g["high_30"])).mean()
        out.append({"method": method, "n_models": len(g), "spearman_vs_all_items": rho,
                    "spearman_vs_accuracy": rho_acc,
                    "mean_abs_diff": (g["theta_30"] - g["theta_all"]).abs().mean(),
                    "interval_covers_all_items": cover})  # fmt: skip
    return pd.DataFrame(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", choices=sorted(DATASETS))
    ap.add_argument("--cache", default="benchmarks/results/loo")
    ap.add_argument("--no-fit", action="store_true", help="evaluate the cached folds only")
    args = ap.parse_args()
    for ds in args.datasets:
        if not args.no_fit:
            fit_folds(ds, N_FOLDS[ds], Path(args.cache))
        table = evaluate(ds, Path(args.cache))
        table.to_csv(Path(__file__).parent / "results" / f"loo_{ds}.csv", index=False)
        with pd.option_context("display.width", 140, "display.max_columns", 20):
            print(table.round(3).to_string(index=False))
            print(report(table).round(3).to_string(index=False))
