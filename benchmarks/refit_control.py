"""Refit advice at any number of new models: false-alarm rate and detection on a real bank.

The population is the shipped ChemBench bank (``models/chembench.nc``: 22 models x 2,854
items, 4 chains x 100 draws). Each simulated new-model set gets its own *world*: one
posterior draw of the items and of the 22 calibration abilities, chosen at random among
the 200 draws that do not score the models (real answers come from unknown true items,
never from one of the scoring draws; a world among them makes the mixture posterior
pick out that draw and sharpen: on the saturated variant below, 2.2 instead of 0.4 of
100 control models at the ceiling); its models answer all 2,854 items from that draw's
2PL. This script simulates the sets with
its own code (not :mod:`fluid_bayes.upkeep.reference`'s) and passes them through
``check_new_models(..., person_fit=False)`` and ``advise(None, new)`` with every default
(``alpha`` 0.05, 199 reference sets, the ``calibration`` population):

- **control** sets: abilities from the calibration population, a calibration model's
  ability in the world's draw chosen at random plus ``N(0, h^2)``, ``h`` Silverman's
  robust bandwidth of the 22 abilities (a model of that population is above all 22 with
  probability about 1 / 23); ``refit`` is a false alarm;
- **beyond** sets: abilities uniform on ``[best + lo, best + hi]``, ``best`` the strongest
  calibration model's posterior mean ability (+0.86; the calibration abilities have SD
  1), margins ``--margins`` (default 0.25-1.0 and 0.1-0.3); ``refit`` is a detection.

Each set is also advised with the reference removed (``bare``: the count rules alone,
as before the reference: refit on one model at the ceiling, or on half the set and at
least 2 beyond the range). ChemBench is not saturated (nobody of its population is at
the ceiling), so ``--shift-b D`` makes a saturated variant of the same fitted bank: every
difficulty draw lowered by ``D`` (an easier benchmark for the same population), where
models of the population reach the ceiling and the bare rule's false alarms grow with
``n``.

The reference of a set of ``n`` depends on ``n`` and the seed only, not on the answers,
so ``--references`` references per ``n`` (seeds 0, 1, ...) are simulated once each and
every set of that block is checked against its block's (``check_new_models(...,
reference=...)``). Rates are reported with Clopper-Pearson 95% intervals.

    nice -n 10 .venv/bin/python benchmarks/refit_control.py [--sizes 10 100 1000]
        [--sets 200] [--detect-sets 100] [--references 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.stats import beta

from fluid_bayes import ItemBank
from fluid_bayes.data.responses import from_array
from fluid_bayes.dims import CHAIN, DRAW, ITEM, SUBJECT
from fluid_bayes.upkeep.advice import advise
from fluid_bayes.upkeep.checking import PPC_DRAWS
from fluid_bayes.upkeep.newmodels import check_new_models

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "refit_control.json"


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of ``k`` of ``n``."""
    lo = 0.0 if k == 0 else float(beta.ppf((1 - level) / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - (1 - level) / 2, k + 1, n - k))
    return lo, hi


class Population:
    """The bank's draws, and new-model sets simulated from them."""

    def __init__(self, bank: ItemBank, seed: int):
        self.bank = bank
        self.a = bank.a.transpose(CHAIN, DRAW, ITEM).values.reshape(-1, bank.n_items)
        self.b = bank.b.transpose(CHAIN, DRAW, ITEM).values.reshape(-1, bank.n_items)
        th = bank.posterior["theta"].transpose(CHAIN, DRAW, SUBJECT).values
        self.theta = th.reshape(-1, th.shape[-1])
        self.best = float(bank.subjects["theta_mean"].max())
        self.rng = np.random.default_rng(seed)

    def control_abilities(self, w: int, n: int) -> np.ndarray:
        cal = self.theta[w]
        q75, q25 = np.percentile(cal, [75, 25])
        h = 0.9 * min(cal.std(), (q75 - q25) / 1.34) * cal.size**-0.2
        return self.rng.choice(cal, n) + h * self.rng.standard_normal(n)

    def answers(self, theta: np.ndarray, w: int, tag: str):
        p = 1.0 / (1.0 + np.exp(-self.a[w] * (theta[:, None] - self.b[w])))
        y = (self.rng.random(p.shape) < p).astype(float)
        return from_array(y, subjects=[f"{tag}{k:04d}" for k in range(theta.size)],
                          items=list(self.bank.items), source=tag)  # fmt: skip

    def simulate(self, kind: str, n: int, seed: int, margin: tuple[float, float] | None = None):
        # the draws check_new_models(seed=seed) scores with (its first use of the seed)
        pick = np.random.default_rng(seed).choice(self.a.shape[0], PPC_DRAWS, replace=False)
        w = int(self.rng.choice(np.setdiff1d(np.arange(self.a.shape[0]), pick)))
        if kind == "control":
            theta = self.control_abilities(w, n)
        else:
            theta = self.rng.uniform(self.best + margin[0], self.best + margin[1], n)
        return self.answers(theta, w, kind)


def run_block(pop, kind, n, n_sets, seed, reference, margin=None):
    """``n_sets`` sets against the reference of ``seed``; returns records and the reference."""
    out = []
    for _ in range(n_sets):
        new = check_new_models(pop.bank, pop.simulate(kind, n, seed, margin), seed=seed,
                               person_fit=False, reference=reference)  # fmt: skip
        reference = new.reference
        adv = advise(None, new)
        bare = advise(None, dataclasses.replace(new, reference=None))
        tests = {t["trigger"]: t for t in adv.reference_tests}
        out.append({
            "refit": adv.decision == "refit",
            "bare_refit": bare.decision == "refit",
            **{f"{k}_count": tests[k]["observed"] for k in tests},
            **{f"{k}_p": tests[k]["tail_probability"] for k in tests},
            **{f"{k}_fired": tests[k]["fired"] for k in tests},
        })  # fmt: skip
    return out, reference


def summarize(records):
    k, n = sum(r["refit"] for r in records), len(records)
    lo, hi = clopper_pearson(k, n)
    kb = sum(r["bare_refit"] for r in records)
    by = {t: int(sum(r.get(f"{t}_fired", False) for r in records)) for t in ("ceiling", "beyond")}
    mean = {t: float(np.mean([r[f"{t}_count"] for r in records])) for t in ("ceiling", "beyond")}
    return {"sets": n, "refit": int(k), "rate": k / n, "ci95": [lo, hi], "fired_by": by,
            "mean_count": mean, "bare_refit": int(kb), "bare_rate": kb / n,
            "bare_ci95": list(clopper_pearson(kb, n))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", type=Path, default=REPO / "models" / "chembench.nc")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--sets", type=int, default=200, help="control sets per size")
    ap.add_argument("--detect-sets", type=int, default=100, help="beyond sets per size/margin")
    ap.add_argument("--references", type=int, default=4, help="references per size")
    ap.add_argument("--margins", type=float, nargs="+", default=[0.25, 1.0, 0.1, 0.3],
                    help="pairs lo hi: beyond sets' abilities above the best one")  # fmt: skip
    ap.add_argument("--shift-b", type=float, default=0.0,
                    help="lower every difficulty draw by this (a saturated variant)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    margins = list(zip(args.margins[::2], args.margins[1::2], strict=True))
    bank = ItemBank.load(args.bank)
    if args.shift_b:
        post = bank.posterior
        post = post.assign(b=post["b"] - args.shift_b)
        groups = {k: v.to_dataset() for k, v in bank.tree.children.items()}
        groups["posterior"] = post
        bank = ItemBank(tree=xr.DataTree.from_dict(groups), meta=bank.meta)
    pop = Population(bank, args.seed)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result = {"bank": str(args.bank.relative_to(REPO)), "best_calibration_theta": pop.best,
              "n_calibration": int(pop.theta.shape[1]), "sizes": {}, "args": options}  # fmt: skip
    t_all = time.time()
    for n in args.sizes:
        t0 = time.time()
        rows = {"control": []} | {f"beyond {lo:g}-{hi:g}": [] for lo, hi in margins}
        for r in range(args.references):
            per = args.sets // args.references + (r < args.sets % args.references)
            recs, ref = run_block(pop, "control", n, per, r, None)
            rows["control"] += recs
            for lo, hi in margins:
                per_d = args.detect_sets // args.references + (
                    r < args.detect_sets % args.references
                )
                recs, _ = run_block(pop, "beyond", n, per_d, r, ref, (lo, hi))
                rows[f"beyond {lo:g}-{hi:g}"] += recs
        entry = {k: summarize(v) for k, v in rows.items()}
        entry["seconds"] = time.time() - t0
        result["sizes"][str(n)] = entry
        c = entry["control"]
        line = (f"n={n:5d}: false alarms {c['refit']}/{c['sets']} = {c['rate']:.3f} "
                f"[{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}] (bare rule {c['bare_rate']:.3f}; "
                f"mean at ceiling {c['mean_count']['ceiling']:.2f}, beyond "
                f"{c['mean_count']['beyond']:.2f})")  # fmt: skip
        for lo, hi in margins:
            d = entry[f"beyond {lo:g}-{hi:g}"]
            line += (f"; detection (+{lo:g}..+{hi:g}) {d['refit']}/{d['sets']} = {d['rate']:.3f} "
                     f"[{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]")  # fmt: skip
        print(line + f"  ({entry['seconds']:.0f} s)", flush=True)
    result["seconds"] = time.time() - t_all
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
