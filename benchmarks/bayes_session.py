"""Bayes-mode sessions against paper-mode sessions, per session (issue 20's table).

Replays ``--subjects`` simulated examinees with
``fluid_bayes.replay(bank, data, method=..., max_items=L, min_items=L)`` on the synthetic
ChemBench-like banks of ``benchmarks/adaptive.py`` (one chain of draws), the paper mode
and the bayes mode in the same run, after a warm-up (compilation) and with the bank's
tables built before timing (they are built once per bank and shared by every session):

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

import pandas as pd
from adaptive import make_bank, simulate_answers  # benchmarks/adaptive.py: the same banks

RESULTS = Path(__file__).resolve().parent / "results"
CASES = [(100, 4000, 10), (100, 4000, 30), (100, 4000, 100), (5000, 500, 500)]


def answers(arrays, n_subjects: int, seed: int = 1):
    """Full 0/1 answers of ``n_subjects`` simulated examinees, as a ResponseMatrix."""
    from fluid_bayes import from_array

    y, _ = simulate_answers(arrays.a_point, arrays.b_point, n_subjects, seed)
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
            bank = make_bank(n_items, chains=1, draws=n_draws, seed=0)
            arrays = BankArrays.from_bank(bank)
            t0 = time.perf_counter()
            arrays.info_table, arrays.accuracy_table, arrays.accuracy_order, arrays.mfi_ranking  # noqa: B018
            banks[(n_items, n_draws)] = (bank, arrays, time.perf_counter() - t0)
        bank, arrays, t_tables = banks[(n_items, n_draws)]
        data = answers(arrays, n_subj)
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
