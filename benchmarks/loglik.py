"""Cost of the joint model's log density and gradient, and how chains share the cores.

Run on demand: ``.venv/bin/python benchmarks/loglik.py [--quick]``. Writes
``benchmarks/results/loglik.json`` and prints two tables:

1. one log density + gradient of the joint model (the model's real graph, compiled by
   PyTensor for numba and for JAX) at a random unconstrained point, median of 200
   calls, at 1,000 x 100 (simulated), 22 x 2,854 (ChemBench) and 100 x 14,000
   (simulated), the cases of ``benchmarks/run.py``;
2. nutpie sampling the 1,000 x 100 model (150 tuning steps + 150 draws) with 1 chain on
   1 core and with 4 chains on the machine's cores, per backend: wall time and
   leapfrog steps (tuning included) per second of wall time. Chains that run in
   parallel multiply the steps per second; a backend that holds the GIL per gradient
   does not.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import nutpie
import pytensor
from run import case_data  # benchmarks/run.py, the calibration benchmark

from fluid_bayes import HierarchicalTwoPL

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("numba", "jax")


def gradient_cost(case: str, *, calls: int = 200) -> dict:
    """Median time of one log density + gradient of the joint model, per backend."""
    data = case_data(case)
    model = HierarchicalTwoPL(likelihood="joint").build(data)
    logp = model.logp()
    grads = pytensor.grad(logp, model.value_vars)
    rng = np.random.default_rng(0)
    point = [rng.normal(0.0, 0.5, np.shape(v)) for v in model.initial_point().values()]
    row = {"case": case, "answers": int(data.mask.sum())}
    # inputs of static shape, as nutpie's frozen model has them: JAX needs the split of
    # the zero-sum (item-anchored frame) gradient at constant positions
    inputs = [pytensor.tensor.tensor(dtype=v.dtype, shape=np.shape(x)) for v, x in
              zip(model.value_vars, point, strict=True)]  # fmt: skip
    replace = dict(zip(model.value_vars, inputs, strict=True))
    outputs = pytensor.graph.clone_replace([logp, *grads], replace)
    for backend in BACKENDS:
        fn = pytensor.function(inputs, outputs, mode=backend.upper())
        for _ in range(5):
            fn(*point)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            [np.asarray(x) for x in fn(*point)]  # JAX returns before it has computed
            times.append(time.perf_counter() - t0)
        ms = float(np.median(times)) * 1e3
        row[f"{backend}_ms"] = round(ms, 3)
        row[f"{backend}_ns_per_answer"] = round(ms * 1e6 / row["answers"], 1)
    return row


def chain_throughput(case: str, *, tune: int, draws: int) -> list[dict]:
    """Leapfrog steps per second of wall time, 1 chain vs 4 chains, per backend."""
    data = case_data(case)
    model = HierarchicalTwoPL(likelihood="joint").build(data)
    cores = os.cpu_count() or 1
    rows = []
    for backend in BACKENDS:
        compiled = nutpie.compile_pymc_model(
            model, backend=backend, gradient_backend="jax" if backend == "jax" else "pytensor"
        )
        for chains, use in ((1, 1), (4, min(4, cores))):
            t0 = time.perf_counter()
            trace = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                cores=use,
                seed=1,
                progress_bar=False,
                target_accept=0.9,
                save_warmup=True,
            )
            wall = time.perf_counter() - t0
            steps = float(trace["sample_stats"]["n_steps"].sum())
            steps += float(trace["warmup_sample_stats"]["n_steps"].sum())
            rows.append(
                {
                    "case": case,
                    "backend": backend,
                    "chains": chains,
                    "cores": use,
                    "wall_s": round(wall, 1),
                    "steps_per_s": round(steps / wall),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print both tables."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    p.add_argument("--cases", nargs="+", default=None, metavar="CASE",
                   help="gradient cases (default: sim_1000x100 chembench sim_100x14000; "
                   "sim_2000x12000 is the leaderboard-scale case of issue 20)")  # fmt: skip
    p.add_argument("--gradient-only", action="store_true", help="skip the chains table")
    p.add_argument("--calls", type=int, default=None, help="timed calls per backend (200)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    cases = ["sim_50x40"] if args.quick else ["sim_1000x100", "chembench", "sim_100x14000"]
    cases = args.cases or cases
    calls = args.calls or (20 if args.quick else 200)
    costs = [gradient_cost(c, calls=calls) for c in cases]
    header = "".join(f"{b + ' ms':>11}{'ns/ans':>8}" for b in BACKENDS)
    print(f"{'case':<12}{'answers':>10}{header}")
    for r in costs:
        line = f"{r['case']:<12}{r['answers']:>10}"
        line += "".join(f"{r[b + '_ms']:>11}{r[b + '_ns_per_answer']:>8}" for b in BACKENDS)
        print(line)
    tune, draws = (20, 20) if args.quick else (150, 150)
    chains = [] if args.gradient_only else chain_throughput(cases[0], tune=tune, draws=draws)
    print(f"\n{'backend':<8}{'chains':>7}{'cores':>6}{'wall s':>8}{'steps/s':>9}")
    for r in chains:
        print(
            f"{r['backend']:<8}{r['chains']:>7}{r['cores']:>6}{r['wall_s']:>8}{r['steps_per_s']:>9}"
        )
    RESULTS.mkdir(exist_ok=True)
    name = "loglik_quick.json" if args.quick else "loglik.json"
    if args.cases:
        name = f"loglik_{'_'.join(args.cases)}.json"
    (RESULTS / name).write_text(json.dumps({"gradient": costs, "chains": chains}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
