"""Cost of live evaluation through lm-evaluation-harness with the simulated model (issue 17).

1. Harness overhead per round: ``LmEvalRunner.run`` (one ``simple_evaluate`` with
   ``samples={task: ids}`` on the 5,700-document local task ``mmlu_redux_local``, the
   per-sample records read back) for rounds of 1, 5 and 20 documents; median of
   ``--rounds`` rounds after one warm-up. The time the model itself spends in
   ``loglikelihood`` is measured apart (it is the simulated model's, not lm-eval's).
2. A 30-question adaptive run (``run_live``, rounds of 5) against running the whole
   task once (one ``simple_evaluate`` of all 5,700 documents): wall time and documents
   run, and the whole task's accuracy against the adaptive run's prediction.

    .venv/bin/python benchmarks/harness.py [--rounds 10] [--skip-full]

Needs ``fluid-bayes[lm-eval]`` and ``models/mmlu-redux.nc`` (which carries the map
item -> ``mmlu_redux_local``, row k).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fluid_bayes.bank import ItemBank  # noqa: E402
from fluid_bayes.harness.documents import bank_documents  # noqa: E402
from fluid_bayes.harness.lm_eval import LmEvalRunner, quiet_lm_eval, run_live  # noqa: E402
from fluid_bayes.harness.lm_eval_sim import FluidSimLM  # noqa: E402

BANK = REPO / "models" / "mmlu-redux.nc"
TASK = "mmlu_redux_local"


class TimedSim(FluidSimLM):
    """The simulated model, timing its own ``loglikelihood`` calls."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model_seconds: list[float] = []

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        t = time.perf_counter()
        out = super().loglikelihood(requests, disable_tqdm)
        self.model_seconds.append(time.perf_counter() - t)
        return out


def overhead(runner: LmEvalRunner, documents, k: int, rounds: int, rng):
    order = rng.permutation(len(documents.items))
    total, model = [], []
    for r in range(rounds + 1):
        items = [documents.items[j] for j in order[r * k : (r + 1) * k]]
        t = time.perf_counter()
        scores = runner.run(documents.lookup(items))
        dt = (time.perf_counter() - t) * 1000
        assert set(scores) == set(items)
        if r:  # the first is the warm-up
            total.append(dt)
            model.append(runner.lm.model_seconds[-1] * 1000)
    return total, model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--skip-full", action="store_true", help="skip the full 5,700-document run")
    args = ap.parse_args()
    import lm_eval

    t = time.perf_counter()
    bank = ItemBank.load(BANK)
    documents = bank_documents(bank)
    print(f"bank loaded in {time.perf_counter() - t:.1f} s ({bank.n_items} items)")
    rng = np.random.default_rng(0)

    lm = TimedSim(bank, theta=0.5, seed=1)
    t = time.perf_counter()
    runner = LmEvalRunner([TASK], lm, documents=documents)
    print(f"task built and checked in {time.perf_counter() - t:.2f} s")
    print(f"\nper-round overhead, median of {args.rounds} rounds (ms):")
    print(f"{'docs':>5} {'round':>8} {'model':>7} {'lm-eval':>8} {'min':>7} {'max':>7}")
    for k in (1, 5, 20):
        total, model = overhead(runner, documents, k, args.rounds, rng)
        harness = [a - b for a, b in zip(total, model, strict=True)]
        print(f"{k:5d} {statistics.median(total):8.1f} {statistics.median(model):7.1f} "
              f"{statistics.median(harness):8.1f} {min(total):7.1f} {max(total):7.1f}")  # fmt: skip

    sim = TimedSim(bank, theta=0.5, seed=1)
    t = time.perf_counter()
    live = run_live(bank, sim, round_size=5, max_items=30)
    wall = time.perf_counter() - t
    harness = sum(r.seconds for r in live.rounds)
    print(f"\nadaptive, 30 questions in rounds of 5: {wall:.1f} s wall ({harness:.2f} s in "
          f"{len(live.rounds)} simple_evaluate calls; the rest is the session: bank tables, "
          f"selection), {sum(len(c) for c in sim.calls)} documents run")  # fmt: skip
    r = live.result
    print(
        f"  ability {r.theta.mean:+.3f} +- {r.theta.sd:.3f}, expected full-benchmark "
        f"accuracy {r.accuracy_mean:.3f} [{r.accuracy_low:.3f}, {r.accuracy_high:.3f}]"
    )
    if args.skip_full:
        return
    whole = TimedSim(bank, theta=0.5, seed=1)
    whole.add_tasks(runner.tasks)
    t = time.perf_counter()
    with quiet_lm_eval(evaluator=True):
        res = lm_eval.simple_evaluate(
            model=whole, tasks=[runner.tasks[TASK]], task_manager=runner.task_manager,
            log_samples=False, bootstrap_iters=0, random_seed=None, numpy_random_seed=None,
            torch_random_seed=None,
        )  # fmt: skip
    wall = time.perf_counter() - t
    acc = res["results"][TASK]["acc,none"]
    print(f"full task, one simple_evaluate: {wall:.1f} s wall "
          f"({sum(whole.model_seconds):.1f} s in the model), "
          f"{sum(len(c) for c in whole.calls)} documents run; accuracy {acc:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
