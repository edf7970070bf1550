"""When to refit, on real data: ChemBench calibrated on weaker models, checked on stronger.

ChemBench (22 models x 2,854 items) is split by full-benchmark accuracy: the 5 strongest
models are "new"; of the 17 weaker ones a seeded random 3 are held out as a control and
the other 14 calibrate the bank (``HierarchicalTwoPL().fit(..., seed=1, draws=500,
tune=1000)``, 4 chains). The one bank is then diagnosed twice with
:mod:`fluid_bayes.upkeep.checking`:

(i) new = the 5 strongest models: expected ``refit`` if they are beyond the scale;
(ii) new = the 3 held-out weaker models (same population as the calibration): expected
``keep``;
(iii) new = 3 simulated models at ability +2.5, +3.5, +4.5 on this bank's scale
(answers drawn from its posterior-mean items): expected ``refit`` for the upper two.

The bank (with its calibration answers) goes to ``benchmarks/results/saturation/``;
the fit is skipped when that file exists. Both diagnoses are printed and saved as JSON.

    nice -n 10 .venv/bin/python benchmarks/saturation.py [--fit-only] [--draws 500]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from fluid_bayes import HierarchicalTwoPL, ItemBank, read_responses
from fluid_bayes.cli.demo import saturation_split

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "fluid_bayes" / "data" / "chembench" / "responses.csv"
OUT = REPO / "benchmarks" / "results" / "saturation"
N_STRONG, N_CONTROL, SPLIT_SEED = 5, 3, 0


def calibrate(data, calib: list[str], path: Path, draws: int) -> ItemBank:
    """Fit the bank on the calibration models and save it with its answers."""
    sub = data.select(subjects=calib)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        bank = HierarchicalTwoPL().fit(sub, seed=1, draws=draws, tune=1000)
    print(f"fit of {len(calib)} models x {sub.n_items} items: {time.perf_counter() - t0:.0f} s")
    print(bank.convergence)
    bank = bank.with_observed(sub)
    bank.save(path, float32=True)
    return bank


def future_models(bank, thetas=(2.5, 3.5, 4.5), seed=0):
    """Answers of hypothetical stronger models, simulated from the bank's posterior means."""
    from fluid_bayes import from_array
    from fluid_bayes.irt import icc

    pe = bank.point_estimates()
    p = icc(np.asarray(thetas)[:, None], pe["a"].to_numpy(), pe["b"].to_numpy())
    y = (np.random.default_rng(seed).random(p.shape) < p).astype(float)
    return from_array(y, subjects=[f"future{t:+.1f}" for t in thetas], items=list(pe.index),
                      source="simulated future models")  # fmt: skip


def main() -> None:
    """Calibrate (unless saved) and diagnose both splits."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-only", action="store_true", help="calibrate and stop")
    ap.add_argument("--draws", type=int, default=500, help="draws per chain (4 chains)")
    ap.add_argument("--easy", type=float, default=None, metavar="Q",
                    help="keep only the items the calibration models answer right at least "
                    "this often (an easier benchmark the strongest saturate)")  # fmt: skip
    args = ap.parse_args()
    data = read_responses(DATA)
    calib, strong, control = saturation_split(data, n_strong=N_STRONG, n_control=N_CONTROL,
                                              seed=SPLIT_SEED)  # fmt: skip
    tag = f"d{args.draws}"
    if args.easy is not None:
        p_calib = np.nanmean(data.select(subjects=calib).values, axis=0)
        keep = [i for i, p in zip(data.items, p_calib, strict=True) if p >= args.easy]
        data = data.select(items=keep)
        tag += f"-easy{args.easy:g}"
        print(f"easy subset: {len(keep)} items the calibration models answer >= {args.easy}")
    acc = data.accuracy()
    for label, ids in (("calibration", calib), ("strongest", strong), ("control", control)):
        print(f"{label}: " + ", ".join(f"{s} ({acc[s]:.3f})" for s in ids))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"chembench-weak14-{tag}.nc"
    bank = ItemBank.load(path) if path.exists() else calibrate(data, calib, path, args.draws)
    if args.fit_only:
        return
    from fluid_bayes.upkeep.advice import advise
    from fluid_bayes.upkeep.checking import check_bank
    from fluid_bayes.upkeep.newmodels import check_new_models

    t0 = time.perf_counter()
    bank_check = check_bank(bank, seed=0)
    t_check = time.perf_counter() - t0
    print(bank_check)
    print(f"check_bank: {t_check:.1f} s")
    results = {"split": {"calibration": calib, "strongest": strong, "control": control},
               "check_bank_seconds": t_check, "bank_check": bank_check.to_dict()}  # fmt: skip
    cases = [(label, data.select(subjects=ids)) for label, ids in
             (("strongest", strong), ("control", control))]  # fmt: skip
    cases.append(("future (simulated)", future_models(bank)))
    for label, new_data in cases:
        t0 = time.perf_counter()
        new = check_new_models(bank, new_data, seed=0)
        advice = advise(bank_check, new)
        new_only = advise(None, new)  # the new models alone, without the bank's own check
        print(f"\n=== new = {label} ({time.perf_counter() - t0:.1f} s)")
        print(new)
        print(advice)
        print(f"(new models alone: {new_only.decision})")
        results[label] = {"new_models": new.to_dict(), "advice": advice.to_dict(),
                          "decision_new_models_only": new_only.decision}  # fmt: skip
    out = OUT / f"saturation-{tag}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
