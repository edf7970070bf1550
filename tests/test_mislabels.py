"""Mislabel detector: scores from the posterior, evaluation against labels, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluid_bayes import ItemBank
from fluid_bayes.cli.main import main
from fluid_bayes.exceptions import DataError
from fluid_bayes.upkeep.mislabels import detect_mislabels, evaluate_detector, read_item_labels


def _bank(seed: int = 0, n_items: int = 200, n_flat: int = 10, n_beyond: int = 5):
    """Synthetic posterior with calibration abilities and population hyperparameters.

    Items 0..n_flat-1 are flat (a ~ 0.05), the next n_beyond are beyond every subject.
    """
    rng = np.random.default_rng(seed)
    C, D, S = 2, 100, 20
    log_a = rng.normal(0.0, 0.4, n_items)
    b = rng.normal(0.0, 1.0, n_items)
    log_a[:n_flat] = np.log(0.05)
    b[n_flat : n_flat + n_beyond] = 4.0
    la = log_a + rng.normal(0, 0.15, (C, D, n_items))
    bb = b + rng.normal(0, 0.2, (C, D, n_items))
    items = [f"q{k:03d}" for k in range(n_items)]
    bank = ItemBank.from_draws(np.exp(la), bb, items=items, source="test")
    theta = np.sort(rng.normal(size=S)) + rng.normal(0, 0.05, (C, D, S))
    post = bank.tree["posterior"].to_dataset()
    post["theta"] = (("chain", "draw", "subject"), theta)
    post["mu_log_a"] = (("chain", "draw"), rng.normal(0.0, 0.03, (C, D)))
    post["sigma_log_a"] = (("chain", "draw"), np.abs(rng.normal(0.4, 0.02, (C, D))))
    post = post.assign_coords(subject=[f"m{k}" for k in range(S)])
    bank.tree["posterior"] = xr.DataTree(post)
    return bank


def test_detector_finds_flat_and_beyond_items():
    bank = _bank()
    rep = detect_mislabels(bank)
    t = rep.table
    flagged = set(rep.flagged_items)
    planted = {f"q{k:03d}" for k in range(15)}
    assert planted <= flagged
    # unplanted flags: the population's own 5% lower tail of a, and the few items with
    # b above the strongest of 20 subjects (b ~ N(0, 1)): about 9 + 5 of 185 expected
    assert len(flagged - planted) <= 0.12 * 185
    assert planted <= set(t.index[:25])
    assert (t.loc[sorted(planted), "score"] > 0.9).all()
    assert t["score"].is_monotonic_decreasing
    assert (t["score"] >= t[["p_low_a", "p_beyond_top"]].max(axis=1) - 1e-12).all()
    # expected accuracy of a beyond-the-top item is small
    assert (t.loc[[f"q{k:03d}" for k in range(10, 15)], "expected_accuracy"] < 0.25).all()


def test_detector_without_hyperparameters_notes_it():
    rng = np.random.default_rng(1)
    a = np.exp(rng.normal(0, 0.3, (1, 50, 40)))
    bank = ItemBank.from_draws(a, rng.normal(size=(1, 50, 40)), items=[f"i{k}" for k in range(40)],
                               source="plain")  # fmt: skip
    rep = detect_mislabels(bank)
    assert len(rep.notes) == 2 and "quantile" in rep.notes[0]
    assert rep.table["p_beyond_top"].eq(0).all()


def test_evaluation_by_hand():
    score = pd.Series([0.9, 0.8, 0.3, 0.1, 0.5], index=list("abcde"))
    labels = pd.Series([1.0, 0.0, 1.0, 0.0, np.nan], index=list("abcde"))
    ev = evaluate_detector(score, labels, flagged=score >= 0.5)
    # positives (0.9, 0.3) vs negatives (0.8, 0.1): 3 of 4 pairs ordered right
    assert ev["auroc"] == pytest.approx(0.75)
    # precision at the positives in score order (a: 1/1, c: 2/3)
    assert ev["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert ev["n_labeled"] == 4 and ev["n_positive"] == 2
    assert ev["precision_flagged"] == pytest.approx(0.5) and ev["recall_flagged"] == 0.5
    with pytest.raises(DataError, match="both classes"):
        evaluate_detector(score, pd.Series(0.0, index=list("abcde")))


def test_read_item_labels(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,subject,error_type\nq1,alg,ok\nq2,alg,wrong_groundtruth\n"
                 "q3,bio,bad_question_clarity\nq4,bio,unlabeled\n")  # fmt: skip
    labels, groups = read_item_labels(p)
    assert labels.tolist()[:3] == [0.0, 1.0, 1.0] and np.isnan(labels["q4"])
    assert groups.to_dict()["q3"] == "bio"
    key, _ = read_item_labels(p, positive="key")
    assert key["q2"] == 1.0 and np.isnan(key["q3"])
    p.write_text("item_id,mislabeled\nq1,1\nq2,maybe\n")
    with pytest.raises(
        DataError, match="line 3 \\(item 'q2'\\): mislabeled 'maybe' is not 0/1/empty"
    ):
        read_item_labels(p)
    p.write_text("item_id,note\nq1,x\n")
    with pytest.raises(DataError, match="needs a 'mislabeled' or an 'error_type'"):
        read_item_labels(p)


def test_cli_mislabels_json(tmp_path, capsys):
    bank = _bank()
    path = bank.save(tmp_path / "bank.nc")
    labels = tmp_path / "labels.csv"
    rows = [f"q{k:03d},{'s1' if k < 100 else 's2'},{1 if k < 15 else 0}" for k in range(150)]
    labels.write_text("item_id,subject,mislabeled\n" + "\n".join(rows) + "\n")
    assert main(["mislabels", str(path), "--labels", str(labels), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["items"]) == 200
    first = out["items"][0]
    assert {"item", "score", "flagged", "p_low_a", "p_beyond_top", "label"} <= set(first)
    scores = [row["score"] for row in out["items"]]
    assert scores == sorted(scores, reverse=True)
    ev = out["evaluation"]
    assert ev["n_labeled"] == 150 and ev["groups"] == ["s1", "s2"]
    assert ev["auroc"] > 0.95
    assert main(["mislabels", str(tmp_path / "nope.nc")]) == 2


def test_average_precision_does_not_depend_on_the_order_of_ties():
    score = pd.Series([1.0, 1.0, 1.0, 1.0, 0.0], index=list("abcde"))
    one = evaluate_detector(score, pd.Series([0.0, 0.0, 1.0, 1.0, 0.0], index=list("abcde")))
    two = evaluate_detector(score, pd.Series([1.0, 1.0, 0.0, 0.0, 0.0], index=list("abcde")))
    # both positives enter at the first threshold: recall 1 at precision 2/4
    assert one["average_precision"] == pytest.approx(0.5)
    assert two["average_precision"] == pytest.approx(0.5)
