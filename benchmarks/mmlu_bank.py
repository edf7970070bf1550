"""Build ``models/mmlu-redux.nc``: MMLU-Redux (14 HELM models x 5,700 questions).

Used by the mislabel study (``fluid-bayes mislabels``, notebook 03). The item
annotations (``items.csv``) ride along as item metadata; the calibration never reads
them. Joint likelihood, 4 chains x 500 draws after 1,000 tuning steps, seed 1;
thinned to 4 x 50 draws and stored in single precision.

    .venv/bin/python benchmarks/mmlu_bank.py [--out models/mmlu-redux.nc]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fluid_bayes import HierarchicalTwoPL, read_responses

DATA = Path(__file__).resolve().parents[1] / "fluid_bayes" / "data" / "mmlu_redux_helm"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "models" / "mmlu-redux.nc")
    )
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--thin", type=int, default=10)
    ap.add_argument("--sampler", default="nutpie", help="nutpie (default) or advi")
    args = ap.parse_args()
    data = read_responses(DATA / "responses.csv", item_meta=DATA / "items.csv")
    t0 = time.perf_counter()
    bank = HierarchicalTwoPL().fit(
        data, seed=1, draws=args.draws, tune=args.tune, sampler=args.sampler
    )
    print(f"fit {time.perf_counter() - t0:.0f} s", flush=True)
    print(bank.convergence, flush=True)
    full = Path(args.out).with_suffix(".full.nc")
    bank.save(full)
    bank.thinned(args.thin).save(args.out, float32=True)
    print(f"wrote {args.out} (full posterior: {full})")
