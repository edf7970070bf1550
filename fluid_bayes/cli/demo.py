"""The main job on the shipped data (``fluid-bayes demo``, ``make demo``).

1. Calibrate LSAT-7 (1,000 examinees x 5 items) and set the posterior beside the
   published marginal-maximum-likelihood estimates.
2. The shipped ChemBench bank (22 language models x 2,854 questions, ``models/``):
   its diagnostics and summary, and the most and least informative questions.
   ``--full`` recalibrates it from the shipped answers instead (about 10 minutes on
   a 2-core machine with the default 4 chains).
3. Adaptive evaluation of four ChemBench models held out of calibration
   (``models/chembench-heldout.nc``), by the Bayesian method and the paper's, each
   asking at least 30 questions and stopping when its ability SD falls below the
   bank's mean gap between rank-adjacent models (at most 100 questions): a table of
   items used, ability, predicted accuracy with its interval and the actual
   full-benchmark accuracy, and a figure of the ability estimates narrowing
   (``out/adaptive_chembench.png``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from fluid_bayes import irt
from fluid_bayes.bank import ItemBank
from fluid_bayes.data.readers import read_responses

__all__ = [
    "DATA",
    "HELD_OUT",
    "MODELS",
    "adaptive_demo",
    "informative_items",
    "run_demo",
    "saturation_split",
]

DATA = Path(__file__).resolve().parents[1] / "data"
MODELS = Path(__file__).resolve().parents[2] / "models"
#: ChemBench models left out of ``models/chembench-heldout.nc`` (20/40/60/80% of the
#: accuracy ranking; ``benchmarks/heldout_bank.py``)
HELD_OUT = ("Mistral-8x7b-Instruct", "GPT-3.5 Turbo Zero-T", "Llama-3.1-70B-Instruct",
            "Mistral-Large-2")  # fmt: skip


def saturation_split(
    data, *, n_strong: int = 5, n_control: int = 3, seed: int = 0
) -> tuple[list[str], list[str], list[str]]:
    """The real-data saturation scenario: (calibration, strongest, control) subject ids.

    Subjects are ordered by full-benchmark accuracy; the ``n_strong`` most accurate
    are the new generation, ``n_control`` of the others (seeded) a control from the
    calibration population, and the rest calibrate the bank. Weakest first within
    each. On ChemBench with the defaults this is the split of
    ``models/chembench-weak14.nc`` (``benchmarks/saturation.py``).
    """
    import numpy as np

    order = data.accuracy().sort_values().index.tolist()
    strong, weak = order[-n_strong:], order[:-n_strong]
    rng = np.random.default_rng(seed)
    control = sorted(rng.choice(weak, n_control, replace=False).tolist(), key=order.index)
    calib = [s for s in weak if s not in control]
    return calib, strong, control


def _lsat_table(bank: Any) -> pd.DataFrame:
    pub = pd.read_csv(DATA / "lsat" / "published_2pl.csv")
    pub = pub[pub["dataset"] == "LSAT7"].reset_index(drop=True)
    s = bank.summary().reset_index()
    return pd.DataFrame(
        {
            "item": s["item"],
            "a_published": pub["a"],
            "a_mean": s["a_mean"],
            "a_hdi": [
                f"[{lo:.2f}, {hi:.2f}]"
                for lo, hi in zip(s["a_hdi_low"], s["a_hdi_high"], strict=True)
            ],
            "b_published": -pub["d"] / pub["a"],
            "b_mean": s["b_mean"],
            "b_hdi": [
                f"[{lo:.2f}, {hi:.2f}]"
                for lo, hi in zip(s["b_hdi_low"], s["b_hdi_high"], strict=True)
            ],
        }
    ).round(3)


def informative_items(bank: Any, *, theta: float = 0.0, n: int = 5) -> pd.DataFrame:
    """Items ranked by posterior-expected Fisher information at ``theta``.

    Returns
    -------
    pandas.DataFrame
        Columns ``info_mean`` (expected information at ``theta``, 1/ability^2),
        ``a_mean``, ``b_mean``; the ``n`` highest and ``n`` lowest rows.
    """
    info = irt.fisher_information(theta, bank.a.values, bank.b.values)  # (chain, draw, item)
    table = pd.DataFrame(
        {
            "info_mean": info.mean(axis=(0, 1)),
            "a_mean": bank.a.mean(("chain", "draw")).values,
            "b_mean": bank.b.mean(("chain", "draw")).values,
        },
        index=pd.Index(bank.items, name="item"),
    ).sort_values("info_mean", ascending=False)
    return pd.concat([table.head(n), table.tail(n)])


def run_demo(args: argparse.Namespace, *, fit: Callable[..., Any]) -> int:
    """Run the demo; ``fit(data, args)`` is the CLI's fitting helper."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print("== 1. LSAT-7: posterior vs published marginal-ML estimates (mirt)")
        lsat = read_responses(DATA / "lsat" / "lsat7_patterns.csv")
        bank = fit(lsat, args)
        print(bank.convergence)
        print(_lsat_table(bank).to_string(index=False))

        print("\n== 2. ChemBench: 22 language models x 2,854 questions")
        shipped = MODELS / "chembench.nc"
        if args.full or not shipped.is_file():
            chem = read_responses(DATA / "chembench" / "responses.csv")
            print(chem.report)
            bank = fit(chem, args)
            path = bank.save(out / "chembench.nc")
            print(f"wrote {path}")
        else:
            bank = ItemBank.load(shipped)
            print(f"shipped bank {shipped} (recalibrate with: fluid-bayes demo --full)")
        print(bank)
        print("\nmost and least informative questions at ability 0 (posterior-expected):")
        print(informative_items(bank).round(3).to_string())

        print("\n== 3. Adaptive evaluation of ChemBench models held out of calibration")
        heldout = ItemBank.load(MODELS / "chembench-heldout.nc")
        chem = read_responses(DATA / "chembench" / "responses.csv")
        table, fig = adaptive_demo(heldout, chem.select(subjects=list(HELD_OUT)))
        print(table.to_string())
        fig.savefig(out / "adaptive_chembench.png", dpi=120, bbox_inches="tight")
        print(f"wrote {out / 'adaptive_chembench.png'}")
    return 0


def adaptive_demo(bank: ItemBank, data: Any, *, max_items: int = 100) -> tuple[pd.DataFrame, Any]:
    """Evaluate ``data``'s subjects adaptively (bayes and paper) against ``bank``.

    Returns
    -------
    (pandas.DataFrame, matplotlib.figure.Figure)
        The table (model, method, items used, ability +- SD, predicted accuracy
        [94% interval], actual accuracy over all bank items) and the figure.
    """
    import matplotlib.pyplot as plt

    from fluid_bayes.adaptive.replay import replay, score_all
    from fluid_bayes.adaptive.selection import BankArrays

    arrays = BankArrays.from_bank(bank)
    full = score_all(bank, data, arrays=arrays)
    runs = {m: replay(bank, data, method=m, stop_sd="auto", min_items=30, max_items=max_items,
                      arrays=arrays)
            for m in ("bayes", "paper")}  # fmt: skip
    rows = []
    for subject in data.subjects:
        for method, rep in runs.items():
            r = next(x for x in rep.results if x.subject == subject)
            rows.append({
                "model": subject, "method": method, "items": r.n_items,
                "ability": f"{r.theta.mean:+.2f} +- {r.theta.sd:.2f}",
                "all-items ability": f"{full.loc[subject, 'theta_mean']:+.2f}",
                "predicted accuracy": f"{r.accuracy_mean:.3f} "
                f"[{r.accuracy_low:.3f}, {r.accuracy_high:.3f}]",
                "actual accuracy": round(float(full.loc[subject, "observed_accuracy"]), 3),
            })  # fmt: skip
    fig, axes = plt.subplots(1, data.n_subjects, figsize=(3.6 * data.n_subjects, 3.2),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, subject in zip(axes[0], data.subjects, strict=True):
        for (method, rep), color in zip(runs.items(), ("C0", "C1"), strict=True):
            tr = rep.trace[rep.trace["subject"] == subject]
            ax.plot(tr["step"], tr["theta_mean"], color=color, label=method)
            ax.fill_between(
                tr["step"],
                tr["theta_mean"] - 1.88 * tr["theta_sd"],
                tr["theta_mean"] + 1.88 * tr["theta_sd"],
                color=color,
                alpha=0.2,
            )
        ax.axhline(full.loc[subject, "theta_mean"], color="k", ls="--", lw=1,
                   label="all 2,854 items")  # fmt: skip
        ax.set(title=subject, xlabel="questions asked")
    axes[0][0].set_ylabel("ability (mean +- 1.88 SD)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Adaptive evaluation against bank {bank.config_hash} (held-out models)", y=1.04)
    return pd.DataFrame(rows).set_index(["model", "method"]), fig
