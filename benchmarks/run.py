"""Calibration benchmarks: wall time, convergence and ESS per second.

Run on demand (``make bench`` or ``python benchmarks/run.py [CASE ...]``); each case
writes ``benchmarks/results/<case>.json`` and the script prints a table. Targets (this
project's 2-core machine, converged = R-hat <= 1.01 and ESS_bulk >= 400 on every item
parameter): LSAT-7 <= 15 s, ChemBench <= 2 min, 1,000 x 100 <= 3 min,
100 x 14,000 <= 20 min.

The leaderboard-scale case of issue 20, a simulated 2,000 x 12,000 calibration (24
million answers), is meant for a GPU: on a machine with one, install JAX's CUDA build
(``.venv/bin/pip install 'jax[cuda12]'``, the jax version of ``constraints.txt``) and run
``.venv/bin/python benchmarks/run.py sim_2000x12000 --backend jax --chains 1``; the
report names the JAX devices the fit ran on. On CPU one log density + gradient at this
size is measured by ``benchmarks/loglik.py --cases sim_2000x1200 --gradient-only``
(answers scale linearly; see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

from fluid_bayes import HierarchicalTwoPL, read_responses
from fluid_bayes.calibration.model import DEFAULT_TUNE
from fluid_bayes.cli.demo import DATA
from fluid_bayes.study.simulate import simulate_2pl

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = {"lsat7": 15, "chembench": 120, "sim_1000x100": 180, "sim_100x14000": 1200}


def case_data(case: str):
    """The answers of a benchmark case: a shipped dataset, or ``sim_NxJ`` simulated."""
    if case == "lsat7":
        return read_responses(DATA / "lsat" / "lsat7_patterns.csv")
    if case == "chembench":
        return read_responses(DATA / "chembench" / "responses.csv")
    if case == "mmlu":
        return read_responses(DATA / "mmlu_redux_helm" / "responses.csv")
    n, j = (int(x) for x in case.removeprefix("sim_").split("x"))
    return simulate_2pl(n, j, seed=1, sigma_log_a=0.3).responses


def run_case(
    case: str,
    *,
    chains: int,
    draws: int | None,
    tune: int,
    backend: str,
    save_dir: str | None = None,
    drop_constant: bool = False,
    target_accept: float | None = None,
    constant_items: str = "auto",
    max_draws: int | None = None,
) -> dict:
    """Fit one case with the default model and report time and diagnostics."""
    data = case_data(case)
    if drop_constant:
        data = data.without_constant_items()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL(constant_items=constant_items).fit(
            data,
            seed=1,
            chains=chains,
            draws=draws,
            tune=tune,
            backend=backend,
            target_accept=target_accept,
            max_draws=max_draws,
        )
    wall = time.perf_counter() - t0
    if save_dir:
        bank.save(Path(save_dir) / f"{case}.nc")
    conv = bank.convergence
    items_ok = conv.max_rhat <= 1.01 and conv.min_ess_bulk >= 400
    stats = bank.tree["sample_stats"].to_dataset() if "sample_stats" in bank.tree.children else None
    return {
        "case": case,
        "shape": [data.n_subjects, data.n_items],
        "dropped_constant_items": len(data.report.dropped_items),
        "integrated_constant_items": bank.meta.sampler.get("constant_items_integrated", 0),
        "likelihood": bank.meta.sampler["likelihood"],
        "backend": bank.meta.sampler["backend"],
        "chains": chains,
        "draws": bank.meta.sampler["draws"],
        "max_draws": bank.meta.sampler.get("max_draws"),
        "tune": tune,
        "target_accept": bank.meta.sampler["target_accept"],
        "wall_s": round(wall, 1),
        "max_rhat": round(conv.max_rhat, 4),
        "min_ess_bulk": round(conv.min_ess_bulk, 1),
        "min_ess_per_s": round(conv.min_ess_bulk / wall, 2),
        "divergences": conv.divergences,
        "mean_leapfrog_steps": None if stats is None else round(float(stats["n_steps"].mean()), 1),
        "converged": bool(items_ok and conv.divergences == 0),
        "target_s": TARGET_S.get(case),
        "machine": f"{platform.node()} {platform.processor()} python {sys.version.split()[0]}",
        "jax_devices": _jax_devices() if backend == "jax" else None,
    }


def _jax_devices() -> list[str]:
    import jax

    return [str(d) for d in jax.devices()]


def main(argv: list[str] | None = None) -> int:
    """Run the named cases (default: the fast ones) and print a table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("cases", nargs="*", default=["lsat7", "chembench", "sim_1000x100"])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=None, help="draws per chain (default: the model's)")
    p.add_argument(
        "--max-draws",
        type=int,
        default=None,
        help="extend unconverged nutpie runs up to this many draws (default: the model's)",
    )
    p.add_argument("--tune", type=int, default=DEFAULT_TUNE)
    p.add_argument("--backend", default="auto", choices=("auto", "jax", "numba"))
    p.add_argument("--save-dir", default=None, help="also save each fitted bank here")
    p.add_argument(
        "--drop-constant", action="store_true", help="leave out items everyone got right or wrong"
    )
    p.add_argument(
        "--target-accept",
        type=float,
        default=None,
        help="NUTS target acceptance (default: the model's, "
        "fluid_bayes.calibration.fitting.TARGET_ACCEPT)",
    )
    p.add_argument(
        "--constant-items",
        default="auto",
        choices=("auto", "integrate", "sample"),
        help="how the joint likelihood treats constant items (HierarchicalTwoPL)",
    )
    args = p.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    rows = []
    for case in args.cases:
        row = run_case(
            case,
            chains=args.chains,
            draws=args.draws,
            tune=args.tune,
            backend=args.backend,
            save_dir=args.save_dir,
            drop_constant=args.drop_constant,
            target_accept=args.target_accept,
            constant_items=args.constant_items,
            max_draws=args.max_draws,
        )
        name = f"{case}_nonconstant" if args.drop_constant else case
        if args.constant_items != "auto":
            name += f"_{args.constant_items}"
        if args.target_accept is not None:
            name += f"_ta{args.target_accept:g}"
        (RESULTS / f"{name}.json").write_text(json.dumps(row, indent=1))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        f"\n{'case':<16}{'shape':>14}{'wall s':>9}{'target':>8}{'R-hat':>8}{'min ESS':>9}"
        f"{'ESS/s':>8}{'div':>5}  converged"
    )
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])
        print(
            f"{r['case']:<16}{shape:>14}{r['wall_s']:>9}{str(r['target_s']):>8}"
            f"{r['max_rhat']:>8}{r['min_ess_bulk']:>9}{r['min_ess_per_s']:>8}"
            f"{r['divergences']:>5}  {r['converged']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
