"""Cost of the ``epv`` selection rule per step, against ``expected-fi`` (issue 21).

A synthetic bank (:func:`~fluid_bayes.study.simulate.simulate_bank`, ``--items`` x
``--draws`` draws); ``--subjects`` simulated sessions of 100 items per rule, timed per
step (selection and update) at steps 1-10, 11-30 and 31-100, after the bank's tables
are built (timed apart).

    nice .venv/bin/python benchmarks/epv_cost.py [--items 2000 --draws 4000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fluid_bayes.adaptive.selection import BankArrays
from fluid_bayes.adaptive.session import Session
from fluid_bayes.study.simulate import simulate_bank


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--draws", type=int, default=4000, help="total draws (4 chains)")
    ap.add_argument("--subjects", type=int, default=5)
    args = ap.parse_args()
    bank = simulate_bank(args.items, seed=1, chains=4, draws=args.draws // 4)
    arrays = BankArrays.from_bank(bank)
    t0 = time.perf_counter()
    arrays.info_table  # noqa: B018 (built once per bank)
    t_tables = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    out = {"items": args.items, "draws": arrays.n_draws, "tables_s": round(t_tables, 1)}
    for select in ("expected-fi", "epv", "expected-fi", "epv"):  # the second pass: compiled
        steps = np.zeros(100)
        for _ in range(args.subjects):
            theta = rng.normal()
            s = Session(bank, estimator="bayes", select=select, max_items=100, arrays=arrays)
            n = 0
            while True:
                t1 = time.perf_counter()
                item = s.next_item()
                if item is None:
                    break
                j = arrays.items.index(item)
                p = 1 / (1 + np.exp(-arrays.a_point[j] * (theta - arrays.b_point[j])))
                s.record(item, float(rng.random() < p))
                steps[n] += time.perf_counter() - t1
                n += 1
        ms = 1e3 * steps / args.subjects
        out[select] = {"ms_per_step_1_10": round(ms[:10].mean(), 2),
                       "ms_per_step_11_30": round(ms[10:30].mean(), 2),
                       "ms_per_step_31_100": round(ms[30:].mean(), 2),
                       "ms_per_100_item_session": round(ms.sum(), 1)}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
