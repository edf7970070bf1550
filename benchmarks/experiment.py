"""Paper-scale experiment: 6 runs x 80 checkpoints x 6 budgets x all methods, 5,000 items.

Bank simulated to resemble the shipped ChemBench bank (2 chains x 100 draws), runs
simulated by :func:`fluid_bayes.study.simulate.simulate_training_runs` (seed 1), random methods
x 5 repeats. Target: under 10 minutes on this project's 2-core machine. Writes
``benchmarks/results/experiment/`` (results, summary, Table-2, figures) and
``benchmarks/results/experiment.json`` (timings).

``--compare N`` (``make bench-experiment``: ``--compare 2``) runs the experiment twice,
serially and on a local Dask cluster of ``N`` worker processes, checks that every table
is identical and reports both times (target: at least 1.8x faster on 2 cores).

    .venv/bin/python benchmarks/experiment.py [--items 5000 --runs 6 --checkpoints 80]
    .venv/bin/python benchmarks/experiment.py --compare 2 [--runs 2 --checkpoints 40]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import pandas as pd

from fluid_bayes import ItemBank
from fluid_bayes.cli.demo import MODELS
from fluid_bayes.data.series import checkpoint_series
from fluid_bayes.study.experiment import run_experiment
from fluid_bayes.study.simulate import simulate_bank, simulate_training_runs

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--checkpoints", type=int, default=80)
    ap.add_argument("--draws", type=int, default=100, help="bank draws per chain (2 chains)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "experiment"))
    ap.add_argument("--workers", type=int, default=1, help="worker processes (1: serial)")
    ap.add_argument("--compare", type=int, default=None, metavar="N",
                    help="run serially and on N workers; check identical; report both")  # fmt: skip
    args = ap.parse_args()
    t0 = time.perf_counter()
    like = ItemBank.load(MODELS / "chembench.nc")
    bank = simulate_bank(args.items, like=like, seed=args.seed, chains=2, draws=args.draws)
    sim = simulate_training_runs(bank, runs=args.runs, checkpoints=args.checkpoints,
                                 seed=args.seed + 1)  # fmt: skip
    series = checkpoint_series(sim.responses.subjects, meta=sim.responses.subject_meta)
    t_sim = time.perf_counter() - t0
    runs = [1, args.compare] if args.compare else [args.workers]
    walls, results = {}, []
    for n in runs:
        t1 = time.perf_counter()
        results.append(run_experiment(bank, sim.responses, series=series,
                                      reference=sim.reference, repeats=args.repeats,
                                      seed=args.seed, progress=True, workers=n))  # fmt: skip
        walls[n] = time.perf_counter() - t1
        print(f"workers={n}: {walls[n]:.1f} s", flush=True)
    result = results[-1]
    t_run = walls[runs[-1]]
    t2 = time.perf_counter()
    result.save(args.out)
    wall = t_sim + t_run + time.perf_counter() - t2
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result.table2().round(3).to_string())
    report = {
        "shape": {"items": args.items, "runs": args.runs, "checkpoints": args.checkpoints,
                  "draws": 2 * args.draws, "repeats": args.repeats,
                  "budgets": result.config["budgets"], "methods": result.config["methods"]},
        "seconds": {"simulate": round(t_sim, 1), "experiment": round(t_run, 1),
                    "total_with_save_and_figures": round(wall, 1),
                    "per_method": result.config["seconds"]},
        "workers": runs[-1],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "target_seconds": 600,
        "met": wall < 600,
    }  # fmt: skip
    if args.compare:
        serial, spread = results
        for name in ("results", "items", "detail", "summary"):
            pd.testing.assert_frame_equal(getattr(serial, name), getattr(spread, name),
                                          check_exact=True)  # fmt: skip
        report["compare"] = {"serial_seconds": round(walls[1], 1),
                             f"workers_{args.compare}_seconds": round(walls[args.compare], 1),
                             "speedup": round(walls[1] / walls[args.compare], 2),
                             "identical": True, "target_speedup": 1.8,
                             "met": walls[1] / walls[args.compare] >= 1.8}  # fmt: skip
    (HERE / "results" / "experiment.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
