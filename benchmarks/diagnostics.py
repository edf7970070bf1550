"""Time the convergence diagnostics (R-hat, bulk and tail ESS by ArviZ) of a fit.

    .venv/bin/python benchmarks/diagnostics.py [--params 5730] [--draws 1000]

A synthetic posterior of 4 chains of independent normal draws (ChemBench's bank has
5,730 checked parameters) is checked by
:func:`fluid_bayes.calibration.diagnostics.check_convergence`
once in this process alone and once split over one process per core; both must give the
same numbers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xarray as xr

from fluid_bayes.calibration import diagnostics


def main() -> None:
    """Print the wall time of each way and check that the results agree."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=5730)
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args()
    x = np.random.default_rng(0).normal(size=(4, args.draws, args.params))
    post = xr.Dataset({"a": (("chain", "draw", "item"), x)})
    tree = xr.DataTree.from_dict({"posterior": post})
    default = diagnostics.PARAMS_PER_WORKER
    reports = {}
    for label, per_worker in (("one process", 10**12), ("one process per core", default)):
        diagnostics.PARAMS_PER_WORKER = per_worker
        t = time.perf_counter()
        reports[label] = diagnostics.check_convergence(tree, var_names=["a"])
        wall = time.perf_counter() - t
        workers = diagnostics._workers(args.params)
        print(f"{label:<22} {wall:6.1f} s  ({workers} process(es), {args.params} parameters)")
    diagnostics.PARAMS_PER_WORKER = default
    one, many = reports.values()
    assert (one.max_rhat, one.min_ess_bulk, one.min_ess_tail) == (
        many.max_rhat,
        many.min_ess_bulk,
        many.min_ess_tail,
    ), "parallel diagnostics differ"
    print(f"same result: max R-hat {one.max_rhat:.4f}, min bulk ESS {one.min_ess_bulk:.0f}")


if __name__ == "__main__":
    main()
