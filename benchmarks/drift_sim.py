"""Drift and linking with real calibrations (issue 5): two fits of the same items.

Per seed: 100 items (log a ~ N(0.2, 0.3), b ~ N(0, 1)); calibration 1 by 300 subjects
with abilities N(0, 1); calibration 2 by 300 other subjects with abilities N(0.5, 1.3)
(so its scale, set by its own sample, is shifted and stretched on purpose), once with 5%
of the items shifted in difficulty by +-1.0 and once without. Each is a real fit
(``HierarchicalTwoPL().fit``, 2 chains x 500 draws after 500 tuning steps).

Reports, per seed and in total: drift recall and precision on the shifted items, the
share of items flagged without a shift, and whether the 95% intervals of the linking
constants A, B contain the truth (``A = s2 / s1``, ``B = (m2 - m1) / s1`` from the two
samples' ability means and SDs). Writes ``benchmarks/results/drift_sim.json``.

    nice .venv/bin/python benchmarks/drift_sim.py [--seeds 3] [--first-seed 0] [--subjects 300]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from fluid_bayes import HierarchicalTwoPL, from_array
from fluid_bayes.irt import icc
from fluid_bayes.upkeep.drift import drift

OUT = Path(__file__).resolve().parent / "results"
N_ITEMS, N_SUBJECTS, SHIFT, SHARE = 100, 300, 1.0, 0.05
FIT = {"draws": 500, "tune": 500, "chains": 2}


def answers(theta, a, b, rng, tag):
    y = (rng.random((theta.size, a.size)) < icc(theta[:, None], a, b)).astype(float)
    return from_array(y, subjects=[f"{tag}{k:03d}" for k in range(theta.size)],
                      items=[f"i{j:03d}" for j in range(a.size)], source=tag)  # fmt: skip


def fit(data, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HierarchicalTwoPL().fit(data, seed=seed, **FIT)


def one_seed(seed: int, n_subjects: int = N_SUBJECTS) -> dict:
    rng = np.random.default_rng(seed)
    a, b = np.exp(rng.normal(0.2, 0.3, N_ITEMS)), rng.normal(0, 1, N_ITEMS)
    moved = rng.choice(N_ITEMS, int(SHARE * N_ITEMS), replace=False)
    b2 = b.copy()
    b2[moved] += SHIFT * rng.choice([-1.0, 1.0], moved.size)
    th1, th2 = rng.normal(0, 1, n_subjects), rng.normal(0.5, 1.3, n_subjects)
    A_true, B_true = th2.std() / th1.std(), (th2.mean() - th1.mean()) / th1.std()
    old = fit(answers(th1, a, b, rng, "old"), seed)
    out = {"seed": seed, "A_true": A_true, "B_true": B_true}
    truth = {f"i{j:03d}" for j in moved}
    for label, bb in (("shift", b2), ("no_shift", b)):
        new = fit(answers(th2, a, bb, rng, "new"), seed)
        rep = drift(old, new)
        flagged = set(rep.drifted_items)
        lk = rep.linking
        res = {"n_flagged": len(flagged), "A": [lk.A_mean, *lk.A_interval],
               "B": [lk.B_mean, *lk.B_interval],
               "A_covered": bool(lk.A_interval[0] <= A_true <= lk.A_interval[1]),
               "B_covered": bool(lk.B_interval[0] <= B_true <= lk.B_interval[1]),
               "max_rhat_new": new.convergence.max_rhat}  # fmt: skip
        if label == "shift":
            hit = len(truth & flagged)
            res.update(recall=hit / len(truth), precision=hit / max(len(flagged), 1))
        else:
            res["share_flagged"] = len(flagged) / N_ITEMS
        out[label] = res
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here")
    ap.add_argument("--subjects", type=int, default=N_SUBJECTS, help="per calibration")
    ap.add_argument("--draws", type=int, default=FIT["draws"])
    ap.add_argument("--tune", type=int, default=FIT["tune"])
    ap.add_argument("--chains", type=int, default=FIT["chains"])
    args = ap.parse_args()
    FIT.update(draws=args.draws, tune=args.tune, chains=args.chains)
    t0 = time.perf_counter()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = one_seed(seed, args.subjects)
        rows.append(r)
        print(json.dumps(r), flush=True)
    shift = [r["shift"] for r in rows]
    summary = {
        "seeds": args.seeds, "items": N_ITEMS, "subjects_per_calibration": args.subjects,
        "first_seed": args.first_seed,
        "shifted_items": int(SHARE * N_ITEMS), "shift": SHIFT,
        "recall_mean": float(np.mean([s["recall"] for s in shift])),
        "precision_mean": float(np.mean([s["precision"] for s in shift])),
        "share_flagged_no_shift_mean": float(
            np.mean([r["no_shift"]["share_flagged"] for r in rows])),
        "A_covered": int(sum(r[k]["A_covered"] for r in rows for k in ("shift", "no_shift"))),
        "B_covered": int(sum(r[k]["B_covered"] for r in rows for k in ("shift", "no_shift"))),
        "links": 2 * len(rows), "seconds": round(time.perf_counter() - t0), "fit": FIT,
        "rows": rows,
    }  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    name = "drift_sim"
    if FIT["chains"] != 2 or FIT["draws"] != 500:
        name += f"_c{FIT['chains']}_d{FIT['draws']}"
    if args.subjects != N_SUBJECTS:
        name += f"_n{args.subjects}"
    if args.first_seed:
        name += f"_s{args.first_seed}"
    name += ".json"
    (OUT / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
