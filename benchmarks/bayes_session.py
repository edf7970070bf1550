"""Bayes-mode sessions against paper-mode sessions, per session (issue 20's table).

Replays ``--subjects`` simulated examinees with
``fluid_bayes.replay(bank, data, method=..., max_items=L, min_items=L)`` on synthetic
banks of posterior-like draws, the paper mode and the bayes mode in the same run, after a
warm-up (compilation) and with the bank's tables built before timing (they are built
once per bank and shared by every session):

- 100 items x 4,000 draws, sessions of 10, 30 and 100 items;
- 5,000 items x 500 draws, sessions of 500 items.

Targets (issue 20): bayes <= 5 ms per 10-item and <= 30 ms per 100-item session on the
first bank, <= 30 ms per 500-item session on the second.

Usage::

    .venv/bin/python benchmarks/bayes_session.py [--subjects 200] [--quick]

Prints a table and writes ``benchmarks/results/bayes_session.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

RESULTS = Path(__file__).resolve().parent / "results"
CASES = [(100, 4000, 10), (100, 4000, 30), (100, 4000, 100), (5000, 500, 500)]


def make_bank(n_items: int, n_draws: int, seed: int = 0):
    """Posterior-like draws around random item parameters (no sampling)."""
    from fluid_bayes import ItemBank

    rng = np.random.default_rng(seed)
    b0 = rng.normal(0.3, 1.0, n_items)
    la0 = rng.normal(0.2, 0.4, n_items)
    b = b0 + rng.normal(0, 0.3, (1, n_draws, n_items))
    a = np.exp(la0 + rng.normal(0, 0.2, (1, n_draws, n_items)))
    theta = pd.Series(np.sort(rng.normal(size=30)), index=[f"m{k}" for k in range(30)])
    items = [f"it{j:05d}" for j in range(n_items)]
    return ItemBank.from_draws(a, b, items=items, source="benchmark", calibration_theta=theta)


def answers(bank, arrays, n_subjects: int, seed: int = 1):
    from fluid_bayes import from_array

    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n_subjects)
    p = expit(arrays.a_point * (theta[:, None] - arrays.b_point))
    y = (rng.random(p.shape) < p).astype(float)
    return from_array(y, subjects=[f"s{k}" for k in range(n_subjects)], items=list(arrays.items))


def main(argv: list[str] | None = None) -> int:
    from fluid_bayes.adaptive.replay import replay
    from fluid_bayes.adaptive.selection import BankArrays

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="20 subjects, the first case")
    args = ap.parse_args(argv)
    cases = CASES[:1] if args.quick else CASES
    n_subj = 20 if args.quick else args.subjects
    rows, banks = [], {}
    for n_items, n_draws, length in cases:
        if (n_items, n_draws) not in banks:
            bank = make_bank(n_items, n_draws)
            arrays = BankArrays.from_bank(bank)
            t0 = time.perf_counter()
            arrays.info_table, arrays.accuracy_table, arrays.accuracy_order, arrays.mfi_ranking  # noqa: B018
            banks[(n_items, n_draws)] = (bank, arrays, time.perf_counter() - t0)
        bank, arrays, t_tables = banks[(n_items, n_draws)]
        data = answers(bank, arrays, n_subj)
        warm = data.select(subjects=list(data.subjects[:2]))
        row = {"items": n_items, "draws": n_draws, "length": length, "subjects": n_subj,
               "tables_s": round(t_tables, 2)}  # fmt: skip
        for method in ("paper", "bayes"):
            replay(bank, warm, method=method, max_items=length, min_items=length, arrays=arrays)
            t0 = time.perf_counter()
            replay(bank, data, method=method, max_items=length, min_items=length, arrays=arrays)
            row[f"{method}_ms"] = 1e3 * (time.perf_counter() - t0) / n_subj
        rows.append(row)
        print(f"{n_items} items x {n_draws} draws, {length}-item sessions: paper "
              f"{row['paper_ms']:.3f} ms, bayes {row['bayes_ms']:.1f} ms per session "
              f"(tables {t_tables:.1f} s once)", flush=True)  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"benchmark": "bayes_session", "date": time.strftime("%Y-%m-%d %H:%M %Z"),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_avg_at_end": os.getloadavg()}, "rows": rows}  # fmt: skip
    (RESULTS / "bayes_session.json").write_text(json.dumps(out, indent=1))
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
