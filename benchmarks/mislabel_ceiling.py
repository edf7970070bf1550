"""How far answers alone can find MMLU-Redux's answer-key errors (issue 19, part 1).

Issue 19 asks, on the shipped MMLU-Redux data (14 HELM models x 5,700 questions; the
annotated half only), for answer-key errors administered per 100-question session by
fluid-bayes <= 0.2x random, and a detector AUROC for key errors >= 0.85 on labels the
calibration never read. This measures what the data allow any detector that reads the
0/1 answers (the bank is fitted on nothing else):

- per number of models right ``k`` (0..14): annotated items, key errors, any error.
  Items every model answers alike (``k`` = 0 or 14) carry no ability information; 15
  of the 94 key errors are answered right by all 14 models, like 1,556 clean items;
- AUROC for key errors of ``1 - proportion correct``, and two *in-sample* ceilings
  fitted on the very labels they are scored on (so no detector that reads the answers
  and not the labels can be expected to exceed them out of sample): the key-error rate
  of each ``k`` (the best score that depends on the answers only through ``k``), and
  that rate minus ``lam`` times the item's correlation with the models' accuracy,
  ``lam`` chosen in-sample; and the rate of each ``k`` cross-fitted over the subjects
  (fitted on the other half of the annotated subjects, scored on this half);
- 100-question sessions of every model (``replay``, ``stop_sd=None``) by ``bayes``,
  ``paper`` and ``random`` (``--repeats`` seeds): key errors administered per session,
  and for each key error a session administered, how often, its ``k`` and its
  correlation with the models' accuracy (a key error whose answers rise with ability
  looks like a working item to any answer-based rule); with the share of the clean
  items of the same ``k`` range (1..13) whose correlation is no higher, i.e. what a
  rule that withheld such items would withhold of the working ones.

Runs in about half a minute. Writes ``benchmarks/results/mislabel_ceiling.json``.

    nice .venv/bin/python benchmarks/mislabel_ceiling.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import fluid_bayes as fb
from fluid_bayes.adaptive.replay import replay
from fluid_bayes.upkeep.mislabels import evaluate_detector, read_item_labels

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "fluid_bayes" / "data" / "mmlu_redux_helm"
BANK = ROOT / "models" / "mmlu-redux.nc"
OUT = ROOT / "benchmarks" / "results" / "mislabel_ceiling.json"


def auroc(score: pd.Series, labels: pd.Series) -> float:
    """AUROC of ``score`` for ``labels`` (1 positive, 0 negative, NaN skipped)."""
    return float(evaluate_detector(score, labels)["auroc"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="random sessions' seeds")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = fb.read_responses(DATA / "responses.csv")
    key, _ = read_item_labels(DATA / "items.csv", positive="key")
    anyerr, _ = read_item_labels(DATA / "items.csv", positive="any")
    annotations = pd.read_csv(DATA / "items.csv", index_col="item_id")
    subjects, error_type = annotations["subject"], annotations["error_type"]
    items = pd.Index(list(data.items))
    y = pd.DataFrame(np.asarray(data.values, float), index=list(data.subjects), columns=items)
    k = y.sum(axis=0)
    acc = y.mean(axis=1)
    corr = pd.Series(
        [float(np.corrcoef(y[i], acc)[0, 1]) if 0 < k[i] < len(y) else 0.0 for i in items],
        index=items,
    )
    # key labels: 1 key error, 0 clean, NaN unknown or another error (left out)
    ann = key.reindex(items).notna()
    kk, ke = k[ann], key.reindex(items)[ann]
    annotated = anyerr.reindex(items).notna()
    ka, kall = anyerr.reindex(items)[annotated], k[annotated]
    by_k = pd.DataFrame({"annotated": kall.groupby(kall).size(),
                         "any_error": ka.groupby(kall).sum(),
                         "key_errors": ke.groupby(kk).sum()}).fillna(0).astype(int)  # fmt: skip
    rate = ke.groupby(kk).mean()
    in_k = kk.map(rate)
    lams = [0.0, 0.003, 0.01, 0.02, 0.03, 0.05, 0.1]
    with_corr = {lam: auroc(in_k - lam * corr[ann], ke) for lam in lams}
    # cross-fitted: the rate of each k from the other half of the annotated subjects
    names = sorted(subjects[ann[ann].index].unique())
    halves = [set(names[0::2]), set(names[1::2])]
    cross = pd.Series(np.nan, index=ke.index)
    for h in (0, 1):
        train = subjects.reindex(ke.index).isin(halves[1 - h])
        test = subjects.reindex(ke.index).isin(halves[h])
        r = ke[train].groupby(kk[train]).mean()
        cross[test] = kk[test].map(r).fillna(ke[train].mean()).to_numpy()
    result: dict = {
        "command": "benchmarks/mislabel_ceiling.py", "args": vars(args),
        "n_annotated": int(annotated.sum()), "n_key_errors": int(ke.sum()),
        "n_any_errors": int(ka.sum()),
        "by_models_right": {int(i): row.to_dict() for i, row in by_k.iterrows()},
        "auroc_key": {
            "1 - proportion correct": auroc(1.0 - k / len(y), key),
            "in-sample ceiling: key-error rate of each k": auroc(in_k, ke),
            "in-sample ceiling: rate of k - lam * correlation (best lam)": max(with_corr.values()),
            "cross-fitted rate of k (subjects split in halves)": auroc(cross, ke),
        },
        "auroc_key_by_lam": with_corr,
        "target_auroc": 0.85,
    }  # fmt: skip
    print(by_k.T.to_string())
    for name, v in result["auroc_key"].items():
        print(f"AUROC key errors  {name:<58} {v:.3f}")
    bank = fb.ItemBank.load(BANK)
    clean_mid = (anyerr.reindex(items) == 0) & (k > 0) & (k < len(y))
    result["sessions"] = {}
    for method in ("bayes", "paper", "random"):
        seeds = range(args.repeats) if method == "random" else [0]
        per, asked = [], []
        for s in seeds:
            tr = replay(bank, data, method=method, max_items=100, stop_sd=None, seed=s).trace
            hit = tr[key.reindex(tr["item"]).to_numpy() == 1]
            per.append(len(hit) / tr["subject"].nunique())
            asked.append(hit["item"])
        entry = {"key_errors_per_session": float(np.mean(per))}
        if method != "random":
            counts = pd.concat(asked).value_counts()
            entry["key_errors_asked"] = [
                {"item": i, "sessions": int(n), "k": int(k[i]), "error": str(error_type[i]),
                 "correlation_with_accuracy": round(float(corr[i]), 3),
                 "clean_mid_items_no_higher": round(float((corr[clean_mid] <= corr[i]).mean()), 3)}
                for i, n in counts.items()
            ]  # fmt: skip
        result["sessions"][method] = entry
        per_session = entry["key_errors_per_session"]
        print(f"{method:<7} key errors per 100-question session {per_session:.2f}")
        for e in entry.get("key_errors_asked", []):
            print(f"    {e['item']:<32} {e['sessions']:>2} sessions  k {e['k']:>2}  "
                  f"corr {e['correlation_with_accuracy']:+.2f}  clean items no higher "
                  f"{e['clean_mid_items_no_higher']:.0%}  ({e['error']})")  # fmt: skip
    rnd = result["sessions"]["random"]["key_errors_per_session"]
    for method in ("bayes", "paper"):
        result["sessions"][method]["ratio_to_random"] = (
            result["sessions"][method]["key_errors_per_session"] / rnd
        )
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
