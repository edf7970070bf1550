"""Selection rules on the shipped real data (issue 21): held-out models of few-model banks.

Cases (``--cases``):

``chembench-heldout``
    the shipped ``models/chembench-heldout.nc`` (18 models; no fit) and its 4 held-out
    models;
``chembench-few``, ``mmlu-few``
    a bank fitted by nutpie on ``--few`` models (spread over the accuracy ranking;
    MMLU-Redux on the seeded 1,000-item subset of ``benchmarks/loo.py``), evaluated on
    every other model;
``chembench-loo``, ``mmlu-loo``
    leave-one-model-out for ``--folds`` models spread over the accuracy ranking (the
    folds of ``benchmarks/loo.py``, fitted here with the same reduced settings unless
    cached in ``--cache``).

Every held-out model is evaluated by each method to 100 items; at budgets 10, 30, 100
the estimate is compared with the model's ability from all its answers under the same
bank (``score_all``, the bayes estimator): RMSE and Spearman across the held-out
models, and the rank distance to their accuracy over all items. Differences from
``paper`` come with a paired bootstrap over held-out models (90%).

    nice .venv/bin/python benchmarks/selection_real.py --cases chembench-heldout chembench-few
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from fluid_bayes import HierarchicalTwoPL, ItemBank
from fluid_bayes.adaptive.replay import score_all
from fluid_bayes.cli.demo import MODELS
from fluid_bayes.study.metrics import bootstrap_indices, mean_rank_distance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loo import SETTINGS, held_out, load  # noqa: E402
from selection_study import BUDGETS, METHODS, replay_methods  # noqa: E402

HERE = Path(__file__).resolve().parent
FEW = {"draws": 200, "tune": 300, "chains": 2, "seed": 1}


def fit(data, settings, path: Path | None = None):
    """A bank of ``data`` (cached at ``path`` when given)."""
    if path is not None and path.is_file():
        return ItemBank.load(path), 0.0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL().fit(data, **settings)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        bank.save(path)
    return bank, time.perf_counter() - t0


def evaluate(bank, data) -> pd.DataFrame:
    """Per held-out model, method and budget: estimate, all-items ability, accuracy."""
    arrays, sessions, _ = replay_methods(bank, data, METHODS)
    full = score_all(bank, data, arrays=arrays)
    rows = []
    for name, res in sessions.items():
        for r in res:
            for n in BUDGETS:
                step = r.steps[min(n, len(r.steps)) - 1]
                rows.append({"model": r.subject, "method": name, "budget": n,
                             "theta": step.theta_mean, "sd": step.theta_sd,
                             "theta_all": full.loc[r.subject, "theta_mean"],
                             "accuracy": full.loc[r.subject, "observed_accuracy"]})  # fmt: skip
    return pd.DataFrame(rows)


def compare(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per method and budget: RMSE, Spearman, rank distance; paired diffs from paper."""
    models = sorted(table["model"].unique())
    idx = bootstrap_indices(len(models), n_boot, seed)

    def stats(g, take):
        g = g.set_index("model").loc[[models[k] for k in take]]
        err = np.sqrt(np.mean((g["theta"] - g["theta_all"]) ** 2))
        rho = spearmanr(g["theta"], g["theta_all"]).statistic
        rank = mean_rank_distance(g["theta"].to_numpy(), g["accuracy"].to_numpy()).value
        return np.array([err, rho, rank])

    out = []
    for n in BUDGETS:
        at = table[table["budget"] == n]
        base = at[at["method"] == "paper"]
        b_obs = stats(base, range(len(models)))
        b_boot = np.array([stats(base, row) for row in idx])
        for method, g in at.groupby("method", sort=False):
            obs = stats(g, range(len(models)))
            row = {"method": method, "budget": n, "n_models": len(models)}
            for k, name in enumerate(("rmse", "spearman", "rank_distance")):
                row[name] = obs[k]
                if method != "paper":
                    d = np.array([stats(g, r)[k] for r in idx]) - b_boot[:, k]
                    lo, hi = np.nanquantile(d, [0.05, 0.95])
                    row[f"{name}_diff"] = obs[k] - b_obs[k]
                    row[f"{name}_low"], row[f"{name}_high"] = lo, hi
            out.append(row)
    return pd.DataFrame(out)


def cases(name: str, args):
    """Yield (label, bank, held-out data, fit seconds) of one case."""
    dataset = name.split("-")[0]
    data = load(dataset)
    if name == "chembench-heldout":
        bank = ItemBank.load(MODELS / "chembench-heldout.nc")
        cal = set(bank.subjects.index)
        yield name, bank, data.select(subjects=[s for s in data.subjects if s not in cal]), 0.0
    elif name.endswith("-few"):
        few = held_out(data, args.few)
        bank, secs = fit(data.select(subjects=few), FEW)
        yield name, bank, data.select(subjects=[s for s in data.subjects if s not in few]), secs
    else:  # loo
        for subject in held_out(data, args.folds):
            rest = data.select(subjects=[s for s in data.subjects if s != subject])
            path = Path(args.cache) / dataset / f"{subject.replace('/', '_')}.nc"
            bank, secs = fit(rest, SETTINGS, path)
            yield f"{name}:{subject}", bank, data.select(subjects=[subject]), secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["chembench-heldout", "chembench-few"],
                    choices=["chembench-heldout", "chembench-few", "mmlu-few",
                             "chembench-loo", "mmlu-loo"])  # fmt: skip
    ap.add_argument("--few", type=int, default=9, help="models of the few-model banks")
    ap.add_argument("--folds", type=int, default=4, help="leave-one-out folds per dataset")
    ap.add_argument("--cache", default=str(HERE / "results" / "loo"))
    ap.add_argument("--out", default=str(HERE / "results" / "selection_real.json"))
    args = ap.parse_args()
    report = {}
    for case in args.cases:
        tables, secs = [], 0.0
        for label, bank, held, s in cases(case, args):
            secs += s
            t = evaluate(bank, held)
            t["fold"] = label
            tables.append(t)
            print(f"{label}: {held.n_subjects} held-out model(s), fit {s:.0f} s", flush=True)
        table = pd.concat(tables, ignore_index=True)
        res = compare(table)
        report[case] = {"fit_s": round(secs, 1), "table": res.to_dict("records")}
        Path(args.out).write_text(json.dumps(report, indent=1, default=float))
        with pd.option_context("display.width", 220, "display.max_columns", 30):
            print(case)
            print(res.round(3).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
