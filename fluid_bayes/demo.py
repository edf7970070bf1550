"""The main job on the shipped data (``fluid-bayes demo``, ``make demo``).

1. Calibrate LSAT-7 (1,000 examinees x 5 items) and set the posterior beside the
   published marginal-maximum-likelihood estimates.
2. The shipped ChemBench bank (22 language models x 2,854 questions, ``models/``):
   its diagnostics and summary, and the most and least informative questions.
   ``--full`` recalibrates it from the shipped answers instead (about 10 minutes on
   a 2-core machine with the default 4 chains).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import irt
from .bank import ItemBank
from .io import read_responses

__all__ = ["DATA", "MODELS", "informative_items", "run_demo"]

DATA = Path(__file__).resolve().parent / "data"
MODELS = Path(__file__).resolve().parents[1] / "models"


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
    return 0
