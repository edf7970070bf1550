"""Paper-scale experiment: 6 runs x 80 checkpoints x 6 budgets x all methods, 5,000 items.

Bank simulated to resemble the shipped ChemBench bank (2 chains x 100 draws), runs
simulated by :func:`fluid_bayes.study.simulate.simulate_training_runs` (seed 1), random methods
x 5 repeats. Target: under 10 minutes on this project's 2-core machine. Writes
``benchmarks/results/experiment/`` (results, summary, Table-2, figures) and
``benchmarks/results/experiment.json`` (timings).

    .venv/bin/python benchmarks/experiment.py [--items 5000 --runs 6 --checkpoints 80]
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
    args = ap.parse_args()
    t0 = time.perf_counter()
    like = ItemBank.load(MODELS / "chembench.nc")
    bank = simulate_bank(args.items, like=like, seed=args.seed, chains=2, draws=args.draws)
    sim = simulate_training_runs(bank, runs=args.runs, checkpoints=args.checkpoints,
                                 seed=args.seed + 1)  # fmt: skip
    series = checkpoint_series(sim.responses.subjects, meta=sim.responses.subject_meta)
    t_sim = time.perf_counter() - t0
    result = run_experiment(bank, sim.responses, series=series, reference=sim.reference,
                            repeats=args.repeats, seed=args.seed, progress=True)  # fmt: skip
    t_run = time.perf_counter() - t0 - t_sim
    result.save(args.out)
    wall = time.perf_counter() - t0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result.table2().round(3).to_string())
    report = {
        "shape": {"items": args.items, "runs": args.runs, "checkpoints": args.checkpoints,
                  "draws": 2 * args.draws, "repeats": args.repeats,
                  "budgets": result.config["budgets"], "methods": result.config["methods"]},
        "seconds": {"simulate": round(t_sim, 1), "experiment": round(t_run, 1),
                    "total_with_save_and_figures": round(wall, 1),
                    "per_method": result.config["seconds"]},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "target_seconds": 600,
        "met": wall < 600,
    }  # fmt: skip
    (HERE / "results" / "experiment.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
