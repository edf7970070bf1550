"""Cost of live evaluation through Inspect AI with the simulated model (issue 17).

1. Harness overhead per round: ``InspectRunner.run`` (one ``inspect_ai.eval`` with
   ``sample_id=[...]`` on the 5,700-sample local task ``mmlu_redux_local``, the log
   written and its sample summaries read back) for rounds of 1, 5 and 20 documents;
   median of ``--rounds`` rounds after one warm-up. The model answers instantly, so
   this is all harness.
2. A 30-question adaptive run (``run_live``, rounds of 5) against running the whole
   task once (one ``eval`` of all 5,700 samples): wall time and documents run.

    .venv/bin/python benchmarks/harness_inspect.py [--rounds 10] [--skip-full]

Needs ``fluid-bayes[inspect]`` and ``models/mmlu-redux.nc`` (which carries the map
item -> ``mmlu_redux_local``, row k).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fluid_bayes.bank import ItemBank  # noqa: E402
from fluid_bayes.harness.documents import bank_documents  # noqa: E402
from fluid_bayes.harness.inspect import InspectRunner, run_live  # noqa: E402

BANK = REPO / "models" / "mmlu-redux.nc"
MODEL = "fluidsim/theta=0.5:seed=1"


def overhead(runner: InspectRunner, documents, k: int, rounds: int, rng) -> list[float]:
    order = rng.permutation(len(documents.items))
    pos = 0
    times = []
    for r in range(rounds + 1):
        items = [documents.items[j] for j in order[pos : pos + k]]
        pos += k
        t = time.perf_counter()
        scores = runner.run(documents.lookup(items))
        dt = (time.perf_counter() - t) * 1000
        assert set(scores) == set(items)
        if r:  # the first is the warm-up
            times.append(dt)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--skip-full", action="store_true", help="skip the full 5,700-sample run")
    args = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    bank = ItemBank.load(BANK)
    documents = bank_documents(bank)
    print(f"bank loaded in {time.perf_counter() - t:.1f} s ({bank.n_items} items)")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        runner = InspectRunner("mmlu_redux_local", MODEL, log_dir=Path(tmp) / "rounds",
                               model_args={"bank": str(BANK)})  # fmt: skip
        runner.check(documents)
        print(f"task + model + check: {time.perf_counter() - t:.1f} s")
        rng = np.random.default_rng(0)
        print("\nround size | median ms/round | min-max ms | ms per document")
        for k in (1, 5, 20):
            ms = overhead(runner, documents, k, args.rounds, rng)
            med = statistics.median(ms)
            print(f"{k:10d} | {med:15.0f} | {min(ms):4.0f}-{max(ms):4.0f} | {med / k:8.1f}")

        t = time.perf_counter()
        live = run_live(bank, "mmlu_redux_local", MODEL, model_args={"bank": str(BANK)},
                        log_dir=Path(tmp) / "live", round_size=5, max_items=30)  # fmt: skip
        wall = time.perf_counter() - t
        harness = sum(r.seconds for r in live.rounds)
        print(
            f"\nadaptive, 30 questions in rounds of 5: {wall:.1f} s wall ({harness:.1f} s in "
            f"{len(live.rounds)} eval calls), {live.documents_run} documents; {live}"
        )
        # the same session without a harness: what choosing and updating cost
        from fluid_bayes.adaptive.session import Session
        from fluid_bayes.harness.inspect_sim import simulated_model

        sim, _ = simulated_model(BANK, 0.5, 1)
        t = time.perf_counter()
        session = Session(bank, max_items=30, round_size=5, subject=MODEL)
        while items := session.next_items(5):
            for item in items:
                session.record(item, sim.answers([item])[item])
        alone = time.perf_counter() - t
        assert session.result().items == live.result.items
        print(
            f"the same session without a harness: {alone:.1f} s (selection and updates); "
            f"harness per document {harness / live.documents_run * 1000:.0f} ms"
        )
        if not args.skip_full:
            import inspect_ai

            task = runner.by_name["mmlu_redux_local"]
            t = time.perf_counter()
            (log,) = inspect_ai.eval(task, model=runner.model, log_dir=str(Path(tmp) / "full"),
                                     display="none", log_level="error", score_display=False,
                                     epochs=1)  # fmt: skip
            wall_full = time.perf_counter() - t
            n = log.results.completed_samples if log.results else 0
            print(
                f"full task, one eval: {wall_full:.1f} s wall, {n} documents, status "
                f"{log.status}; adaptive/full: {wall / wall_full:.3f} of the time, "
                f"{live.documents_run / max(n, 1):.4f} of the documents"
            )


if __name__ == "__main__":
    main()
