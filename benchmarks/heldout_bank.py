"""Build ``models/chembench-heldout.nc``: ChemBench calibrated without four models.

The demo (``make demo``) evaluates the held-out models adaptively against this bank and
compares with their full-benchmark accuracy. Held out: the models at 20%, 40%, 60% and
80% of the accuracy ranking. Every sampler default (4 chains x 1,000 draws after 1,000
tuning steps), seed 1; thinned to 4 x 100 draws and stored in single precision.

    .venv/bin/python benchmarks/heldout_bank.py [--out models/chembench-heldout.nc]
"""

from __future__ import annotations

import argparse
import time

from fluid_bayes import HierarchicalTwoPL, read_responses
from fluid_bayes.cli.demo import DATA, HELD_OUT, MODELS


def held_out_models(data) -> list[str]:
    """Models at 20/40/60/80% of the accuracy ranking (weakest first)."""
    order = data.accuracy().sort_values().index.tolist()
    return [order[int(round(q * (len(order) - 1)))] for q in (0.2, 0.4, 0.6, 0.8)]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(MODELS / "chembench-heldout.nc"))
    args = ap.parse_args()
    data = read_responses(DATA / "chembench" / "responses.csv")
    held = held_out_models(data)
    assert tuple(held) == HELD_OUT, (held, HELD_OUT)
    rest = data.select(subjects=[s for s in data.subjects if s not in held])
    t0 = time.perf_counter()
    bank = HierarchicalTwoPL().fit(rest, seed=1)
    print(f"fit {time.perf_counter() - t0:.0f} s")
    print(bank.convergence)
    bank.thinned(10).save(args.out, float32=True)
    print(f"held out {held}; wrote {args.out}")
