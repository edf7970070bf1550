"""Rounds of k questions (issue 17): which joint rule, and what rounds cost in accuracy.

Replays adaptive sessions over the stored answers of real benchmarks, asking ``k`` items
per round (:meth:`fluid_bayes.adaptive.session.Session.next_items`, answers recorded in
the order proposed), for every joint rule of :mod:`fluid_bayes.adaptive.rounds` and
k = 1, 5, 10, 20, with the same total budgets (20, 40, 100 items; every k divides every
budget, so the estimate after ``n`` items of a 100-item session is that of an
``n``-item session):

- ChemBench: ``models/chembench.nc`` and the answers of its 22 calibration models
  (``fluid_bayes/data/chembench/responses.csv``);
- MMLU-Redux: ``models/mmlu-redux.nc`` (an ADVI approximation) and its 14 HELM models
  (``fluid_bayes/data/mmlu_redux_helm/responses.csv``).

Reported per dataset, method (``bayes``, ``paper``), rule, k and budget: the Spearman
rank correlation of the final estimates with the all-items ability
(:func:`fluid_bayes.adaptive.replay.score_all`, the ``bayes`` estimator on every answer),
the mean absolute difference from that ability, the mean posterior SD, the mean absolute
difference of the ability from the k = 1 session's, and the selection time per round
(the :meth:`next_items` call that plans it; milliseconds, wall clock).

Usage::

    .venv/bin/python benchmarks/rounds.py            # ~6 min on 2 cores, first run
    .venv/bin/python benchmarks/rounds.py --quick    # smoke test: 6 subjects, 20 items

Writes ``benchmarks/results/rounds.json`` and ``rounds.md`` (``rounds_quick.*`` with
``--quick``). The all-items abilities take most of a first run (one pass over every
answer and draw per subject); they are kept in
``benchmarks/results/rounds_reference_<dataset>_<bank hash>.csv`` and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {
    "chembench": ("models/chembench.nc", "fluid_bayes/data/chembench/responses.csv"),
    "mmlu-redux": ("models/mmlu-redux.nc", "fluid_bayes/data/mmlu_redux_helm/responses.csv"),
}
RULES = ("believer", "believer-mode", "top", "spread")


def reference(name: str, bank, data, arrays) -> pd.DataFrame:
    """All-items abilities (``score_all``), cached per dataset and bank."""
    from fluid_bayes.adaptive.replay import score_all

    path = RESULTS / f"rounds_reference_{name}_{bank.config_hash[:12]}.csv"
    if path.exists():
        ref = pd.read_csv(path, index_col="subject")
        if set(data.subjects) <= set(ref.index):
            return ref
    t0 = time.perf_counter()
    ref = score_all(bank, data, arrays=arrays)
    print(f"  {name}: all-items abilities in {time.perf_counter() - t0:.0f} s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    ref.to_csv(path)
    return ref


def run_sessions(bank, arrays, data, *, method: str, rule: str, k: int, max_items: int):
    """One session per subject in rounds of ``k``; abilities after every answer.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, list of float)
        Posterior means and SDs, shape ``(subjects, max_items)`` (ability scale), and
        the planning time of every round (seconds).
    """
    from fluid_bayes.adaptive.session import Session

    col = {item: j for j, item in enumerate(data.items)}
    means = np.full((data.n_subjects, max_items), np.nan)
    sds = np.full_like(means, np.nan)
    times: list[float] = []
    for s, subject in enumerate(data.subjects):
        session = Session(bank, subject=subject, arrays=arrays, method=method,
                          max_items=max_items, round_size=k, round_rule=rule)  # fmt: skip
        while True:
            t0 = time.perf_counter()
            items = session.next_items()
            if not items:
                break
            times.append(time.perf_counter() - t0)
            for item in items:
                session.record(item, data.values[s, col[item]])
        steps = session.result().steps
        means[s, : len(steps)] = [x.theta_mean for x in steps]
        sds[s, : len(steps)] = [x.theta_sd for x in steps]
    return means, sds, times


def measure(name: str, args) -> list[dict]:
    """Every (method, rule, k) on one dataset; one row per budget."""
    from fluid_bayes import ItemBank, read_responses
    from fluid_bayes.adaptive.selection import BankArrays

    bank_path, data_path = DATASETS[name]
    bank = ItemBank.load(ROOT / bank_path)
    data = read_responses(ROOT / data_path)
    if args.subjects:
        data = data.select(subjects=list(data.subjects[: args.subjects]))
    arrays = BankArrays.from_bank(bank)
    ref = reference(name, bank, data, arrays).loc[list(data.subjects)]
    theta_all = ref["theta_mean"].to_numpy()
    max_items = max(args.budgets)
    arrays.info_table, arrays.mfi_ranking  # noqa: B018  (tables built before timing)
    rows = []
    for method in args.methods:
        for rule in RULES:  # compile and warm up outside the timings
            run_sessions(bank, arrays, data.select(subjects=list(data.subjects[:1])),
                         method=method, rule=rule, k=5, max_items=10)  # fmt: skip
        baseline = None
        for k in args.k:
            for rule in RULES if k > 1 else RULES[:1]:  # k = 1: every rule is the same
                t0 = time.perf_counter()
                means, sds, times = run_sessions(bank, arrays, data, method=method, rule=rule,
                                                 k=k, max_items=max_items)  # fmt: skip
                wall = time.perf_counter() - t0
                if k == 1:
                    baseline = means
                for n in args.budgets:
                    th, sd = means[:, n - 1], sds[:, n - 1]
                    rows.append({
                        "dataset": name, "method": method, "rule": "-" if k == 1 else rule,
                        "k": k, "budget": n, "subjects": data.n_subjects,
                        "spearman": float(spearmanr(th, theta_all).statistic),
                        "abs_err_all_items": float(np.mean(np.abs(th - theta_all))),
                        "mean_sd": float(np.mean(sd)),
                        "abs_diff_k1": float(np.mean(np.abs(th - baseline[:, n - 1]))),
                        "ms_per_round": 1e3 * float(np.mean(times)),
                        "rounds": len(times), "wall_s": wall,
                    })  # fmt: skip
                print(f"  {name} {method} k={k} {rule if k > 1 else '-'}: "
                      f"{wall:.1f} s, {1e3 * np.mean(times):.2f} ms/round", flush=True)  # fmt: skip
    return rows


def markdown(df: pd.DataFrame) -> str:
    """The table of README form: one row per dataset, method, k, budget; a column group per rule."""
    lines = []
    for (name, method), g in df.groupby(["dataset", "method"], sort=False):
        lines += [f"**{name}, {method}**", "",
                  "| budget | k | rule | Spearman | abs. err. vs all items | mean SD "
                  "| abs. diff. vs k=1 | ms/round |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in g.sort_values(["budget", "k"], kind="stable").itertuples():
            lines.append(f"| {r.budget} | {r.k} | {r.rule} | {r.spearman:.3f} | "
                         f"{r.abs_err_all_items:.3f} | {r.mean_sd:.3f} | {r.abs_diff_k1:.3f} | "
                         f"{r.ms_per_round:.2f} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--methods", nargs="+", default=["bayes", "paper"])
    ap.add_argument("--k", nargs="+", type=int, default=[1, 5, 10, 20])
    ap.add_argument("--budgets", nargs="+", type=int, default=[20, 40, 100])
    ap.add_argument("--subjects", type=int, default=0, help="first N subjects (0: all)")
    ap.add_argument("--quick", action="store_true", help="6 subjects, k 1 5, 20 items")
    args = ap.parse_args(argv)
    if args.quick:
        args.subjects, args.k, args.budgets = 6, [1, 5], [10, 20]
    if any(n % k for n in args.budgets for k in args.k) or 1 not in args.k:
        ap.error("every k must divide every budget, and k = 1 is the baseline")
    args.k = sorted(set(args.k))
    t_start = time.perf_counter()
    rows = []
    for name in args.datasets:
        rows += measure(name, args)
    df = pd.DataFrame(rows)
    stem = "rounds_quick" if args.quick else "rounds"
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/rounds.py", *(sys.argv[1:] if argv is None else argv)])
    out = {
        "benchmark": "rounds",
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(),
        },
        "total_s": time.perf_counter() - t_start,
        "rows": rows,
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    table = markdown(df)
    (RESULTS / f"{stem}.md").write_text(f"`{command}`, {out['date']}\n\n{table}")
    print(table)
    print(f"total {out['total_s']:.0f} s; wrote {RESULTS / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
