"""Selection rules in the few-subject regime (issue 21): simulated studies with real fits.

Each study (seed ``k``):

1. true items: one draw of :func:`~fluid_bayes.study.simulate.simulate_bank` shaped like
   the shipped ChemBench bank (``--items``);
2. calibration: 9 training runs x 5 checkpoints (45 subjects,
   :func:`~fluid_bayes.study.simulate.simulate_training_runs`) answer the true items; a
   hierarchical 2PL is fitted to them by nutpie (``--chains`` x ``--draws``,
   ``--tune``): the bank;
3. evaluation: 6 other runs x ``--checkpoints`` answer the true items; every method
   replays them to 100 items. The true abilities are mapped to the bank's scale by the
   least-squares line of the calibration subjects' fitted on true abilities.

Methods: ``paper`` (MAP + MFI on posterior means), and the ``bayes`` estimator with
``expected-fi``, ``epv`` and ``mfi`` selection. Per method and budget (10, 30, 100):
the paper's metrics (monotonicity, total variation, rank distance to the reference),
ability RMSE against the truth (``rmse``; ``rmse_affine``: about the best line through
truth and estimate per study and method, free of the scale mapping), and the mean
posterior SD of log a of the chosen items.
Differences from ``paper`` come with a paired bootstrap over runs, resampled within each
study and averaged over studies (90% interval).

    nice .venv/bin/python benchmarks/selection_study.py --studies 10 [--items 1000]

Writes ``benchmarks/results/selection_study.json`` (and ``..._runs.parquet``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fluid_bayes import ItemBank
from fluid_bayes.adaptive.replay import replay
from fluid_bayes.adaptive.selection import BankArrays
from fluid_bayes.calibration.model import HierarchicalTwoPL
from fluid_bayes.cli.demo import MODELS
from fluid_bayes.study.metrics import bootstrap_indices, paired_differences, summarize
from fluid_bayes.study.simulate import simulate_bank, simulate_training_runs

HERE = Path(__file__).resolve().parent
BUDGETS = (10, 30, 100)
METHODS = {  # name -> (estimator, selection[, integration]; without it the default)
    "paper": ("map", "mfi"),
    "bayes/expected-fi": ("bayes", "expected-fi"),
    "bayes/epv": ("bayes", "epv"),
    "bayes/mfi": ("bayes", "mfi"),
    "bayes/epv-mixture": ("bayes", "epv", "mixture"),
}
LOWER_IS_BETTER = {"variance_tv", "validity_rank_distance", "rmse", "rmse_affine", "a_sd"}
SQUARED = {"rmse": "err", "rmse_affine": "resid"}  # root mean square of these columns


def replay_methods(bank, data, methods, *, max_items=100):
    """Per method the replayed sessions (no SD stop) and the seconds they took."""
    arrays = BankArrays.from_bank(bank)
    out, secs = {}, {}
    for name, (est, sel, *integration) in methods.items():
        t0 = time.perf_counter()
        extra = {"integration": integration[0]} if integration else {}
        res = replay(bank, data, estimator=est, select=sel, arrays=arrays,
                     max_items=max_items, stop_sd=None, **extra)  # fmt: skip
        out[name], secs[name] = list(res.results), time.perf_counter() - t0
    return arrays, out, secs


def tidy(arrays, sessions, truth: pd.DataFrame, theta_true: pd.Series | None):
    """Results table (summarize's columns, plus ``err`` and ``a_sd``) of every method."""
    log_a_sd = np.log(arrays.a).std(axis=0)
    pos = {i: j for j, i in enumerate(arrays.items)}
    rows = []
    for name, res in sessions.items():
        for r in res:
            sd = log_a_sd[[pos[s.item] for s in r.steps]]
            for n in BUDGETS:
                m = min(n, len(r.steps))
                last = r.steps[m - 1]
                rows.append({"subject": r.subject, "run": truth.loc[r.subject, "run"],
                             "step": truth.loc[r.subject, "step"], "method": name,
                             "budget": n, "repeat": 0, "score": last.theta_mean,
                             "a_sd": float(sd[:m].mean()),
                             "err": (last.theta_mean - theta_true[r.subject]
                                     if theta_true is not None else np.nan)})  # fmt: skip
    return pd.DataFrame(rows)


def run_differences(results, extra, *, n_boot, seed):
    """Per-run means of ``extra`` columns (sq. error, a_sd) as paired resampled diffs."""
    units = sorted(results["run"].astype(str).unique())
    idx = bootstrap_indices(len(units), n_boot, seed)
    rows = []
    for col in extra:
        for n in BUDGETS:

            def per_run(method, n=n, col=col):
                g = results[(results["method"] == method) & (results["budget"] == n)]
                v = g[SQUARED[col]] ** 2 if col in SQUARED else g[col]
                x = v.groupby(g["run"].astype(str)).mean().reindex(units).to_numpy()
                return np.concatenate([[x.mean()], x[idx].mean(axis=1)])

            base = per_run("paper")
            for m in results["method"].unique():
                if m != "paper":
                    rows.append({"metric": col, "method": m, "budget": n,
                                 "diff": per_run(m) - base, "base": base})  # fmt: skip
    return rows


def simulated_study(k, args):
    like = ItemBank.load(MODELS / "chembench.nc")
    truth_bank = simulate_bank(args.items, like=like, seed=1000 + k, chains=1, draws=1)
    cal = simulate_training_runs(truth_bank, runs=9, checkpoints=5, seed=2000 + k)
    t0 = time.perf_counter()
    bank = HierarchicalTwoPL().fit(cal.responses, draws=args.draws, tune=args.tune,
                                   chains=args.chains, seed=k, max_draws=args.draws)  # fmt: skip
    t_fit = time.perf_counter() - t0
    fitted = bank.subjects["theta_mean"].reindex(cal.truth.index).to_numpy()
    slope, icpt = np.polyfit(cal.truth["theta"].to_numpy(), fitted, 1)
    ev = simulate_training_runs(truth_bank, runs=6, checkpoints=args.checkpoints,
                                seed=3000 + k)  # fmt: skip
    theta_true = icpt + slope * ev.truth["theta"]
    methods = {m: METHODS[m] for m in args.methods}
    arrays, sessions, secs = replay_methods(bank, ev.responses, methods)
    res = tidy(arrays, sessions, ev.truth, theta_true)
    res["run"] = res["run"].astype(str)
    res["truth"] = theta_true.reindex(res["subject"]).to_numpy()
    res["resid"] = np.nan  # error left after the best line through (truth, estimate)
    for _, g in res.groupby(["method", "budget"]):
        line = np.polyfit(g["truth"], g["score"], 1)
        res.loc[g.index, "resid"] = g["score"] - np.polyval(line, g["truth"])
    res["study"] = k
    runs_out = Path(args.out).with_name(Path(args.out).stem + "_runs.parquet")
    prev = pd.read_parquet(runs_out) if k > args.first and runs_out.is_file() else None
    pd.concat([prev, res]).to_parquet(runs_out, index=False)
    detail, summary = summarize(res, reference=ev.reference)
    diffs = paired_differences(res, detail, baseline="paper", reference=ev.reference,
                               n_boot=args.boot, seed=k)  # fmt: skip
    base = summary.set_index(["metric", "method", "budget"])["value"]
    rows = [{"metric": r.metric, "method": r.method, "budget": r.budget, "diff": r.diff,
             "base": np.full_like(r.diff, base[r.metric, "paper", r.budget])}
            for r in diffs.itertuples()]  # fmt: skip
    rows += run_differences(res, ["rmse", "rmse_affine", "a_sd"], n_boot=args.boot, seed=k)
    conv = bank.convergence
    info = {"study": k, "fit_s": round(t_fit, 1), "replay_s": {m: round(s, 1) for m, s in
            secs.items()}, "rhat_max": getattr(conv, "rhat_max", None),
            "n_subjects": ev.responses.n_subjects}  # fmt: skip
    return rows, info


def pool(rows, prob=0.9):
    """Average each (metric, method, budget)'s resampled differences over studies."""
    df = pd.DataFrame(rows)
    out = []
    for (metric, method, budget), g in df.groupby(["metric", "method", "budget"], sort=False):
        d = np.mean(np.stack(g["diff"].to_list()), axis=0)
        b = np.mean(np.stack([np.broadcast_to(x, d.shape) for x in g["base"]]), axis=0)
        if metric in SQUARED:  # differences of RMSE from the resampled mean squares
            d = np.sqrt(b + d) - np.sqrt(b)
            b = np.sqrt(b)
        lo, hi = np.nanquantile(d[1:], [(1 - prob) / 2, (1 + prob) / 2])
        worse = (lo > 0) if metric in LOWER_IS_BETTER else (hi < 0)
        if metric in ("monotonicity", "validity_spearman"):
            worse = hi < 0
        out.append({"metric": metric, "method": method, "budget": int(budget),
                    "paper": float(b[0]), "value": float(b[0] + d[0]), "diff": float(d[0]),
                    "low": float(lo), "high": float(hi), "worse_than_paper": bool(worse),
                    "studies": len(g)})  # fmt: skip
    return pd.DataFrame(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=10)
    ap.add_argument("--first", type=int, default=0, help="first study seed")
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--checkpoints", type=int, default=12)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                    help="methods to replay (paper is the baseline: always keep it)")
    ap.add_argument("--out", default=str(HERE / "results" / "selection_study.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows, infos = [], []
    for k in range(args.first, args.first + args.studies):
        t1 = time.perf_counter()
        r, info = simulated_study(k, args)
        info["study_s"] = round(time.perf_counter() - t1, 1)
        rows += r
        infos.append(info)
        print(json.dumps(info), flush=True)
        table = pool(rows)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {"args": vars(args), "studies": infos, "table": table.to_dict("records")}, indent=1
            )
        )
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(4).to_string(index=False))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
