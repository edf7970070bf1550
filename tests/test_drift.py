"""Linking and item drift on synthetic posteriors (no sampling)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluid_bayes.bank import ItemBank
from fluid_bayes.exceptions import BankError
from fluid_bayes.upkeep.drift import (
    DEFAULT_PROB,
    apply_linking,
    drift,
    link,
    mean_sigma,
    stocking_lord,
)

TRUE_A, TRUE_B = 1.3, -0.4  # theta_old = A theta_new + B
SEEDS = range(10)


def make_pair(
    seed: int,
    *,
    n_items: int = 300,
    A: float = 1.0,
    B: float = 0.0,
    shift_frac: float = 0.0,
    shift: float = 1.0,
    one_sided: bool = False,
    draws_new: int = 200,
    subjects: bool = False,
) -> tuple[ItemBank, ItemBank, set[str]]:
    """Two fake posteriors of the same items; the new one on theta_new = (theta_old - B) / A.

    Truth: log a ~ N(0, 0.3), b ~ N(0, 1). Each bank's posterior is centred on an
    estimate off the truth by one posterior SD (0.15 on b, 0.1 on log a) and spread by
    the same SD, 2 chains x 200 draws. ``shift_frac`` of the items move their
    difficulty by ``shift`` (random sign unless ``one_sided``) in the new bank.
    """
    rng = np.random.default_rng(seed)
    items = [f"q{j:04d}" for j in range(n_items)]
    log_a, b = rng.normal(0, 0.3, n_items), rng.normal(0, 1, n_items)
    n_shift = round(shift_frac * n_items)
    moved = rng.choice(n_items, n_shift, replace=False)
    b_moved = b.copy()
    b_moved[moved] += shift * (np.ones(n_shift) if one_sided else rng.choice([-1, 1], n_shift))

    def posterior(b_true: np.ndarray, draws: int) -> tuple[np.ndarray, np.ndarray]:
        eb, ea = b_true + rng.normal(0, 0.15, n_items), log_a + rng.normal(0, 0.1, n_items)
        return (
            np.exp(ea + rng.normal(0, 0.1, (2, draws, n_items))),
            eb + rng.normal(0, 0.15, (2, draws, n_items)),
        )

    a0, b0 = posterior(b, 200)
    a1, b1 = posterior(b_moved, draws_new)
    theta = pd.Series(rng.normal(size=20), index=[f"m{i}" for i in range(20)])
    old = ItemBank.from_draws(a0, b0, items=items, source=f"old-{seed}")
    new = ItemBank.from_draws(
        a1 * A,
        (b1 - B) / A,
        items=items,
        source=f"new-{seed}",
        calibration_theta=(theta - B) / A if subjects else None,
    )
    return old, new, {items[j] for j in moved}


def point_bank(a, b, items, source="p") -> ItemBank:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return ItemBank.from_draws(a[None, None], b[None, None], items=list(items), source=source)


def rates(report, moved: set[str], n_items: int = 300) -> tuple[float, float, float]:
    flagged = set(report.drifted_items)
    hit = len(flagged & moved)
    recall = hit / len(moved) if moved else float("nan")
    precision = hit / len(flagged) if flagged else 1.0
    return recall, precision, len(flagged - moved) / (n_items - len(moved))


# ------------------------------------------------------------------ by hand
def test_mean_sigma_by_hand():
    items = list("abcde")
    old = point_bank(np.ones(5), [-1, 1, 1, 2, 2], items)
    new = point_bank(np.full(5, 2.0), [0, 0.5, 1, 1.5, 2], items)
    # sd(old) = sqrt((4 + 0 + 0 + 1 + 1) / 5) = sqrt(1.2); sd(new) = sqrt(0.5); means 1, 1
    A, B = math.sqrt(1.2 / 0.5), 1 - math.sqrt(1.2 / 0.5) * 1
    L = link(old, new, purify=False)
    assert L.A.shape == (1,)
    assert L.A_mean == pytest.approx(A) and L.B_mean == pytest.approx(B)
    assert L.anchors == tuple(items) and L.excluded == ()
    r = drift(old, new, linking=L)
    row = r.table.set_index("item").loc["a"]
    assert row["delta_b_mean"] == pytest.approx(A * 0 + B - (-1))
    assert row["delta_a_mean"] == pytest.approx(2 / A - 1)
    assert row["delta_log_a_mean"] == pytest.approx(math.log(2 / A))
    # point banks: probabilities are 0 or 1 (|delta b| of c = |A + B - 1| = 0 < 0.5)
    assert set(r.table["p_drift_b"]) <= {0.0, 1.0}
    assert not r.table.set_index("item").loc["c", "drifted"]
    linked = apply_linking(new, L)
    np.testing.assert_allclose(linked.b.values.ravel(), A * np.array([0, 0.5, 1, 1.5, 2]) + B)
    np.testing.assert_allclose(linked.a.values.ravel(), 2 / A)


def test_exact_transform_is_recovered_exactly():
    rng = np.random.default_rng(5)
    a, b = np.exp(rng.normal(0, 0.3, (3, 12))), rng.normal(0, 1, (3, 12))
    a_new, b_new = a * TRUE_A, (b - TRUE_B) / TRUE_A
    for A, B in (mean_sigma(b, b_new), stocking_lord(a, b, a_new, b_new)):
        np.testing.assert_allclose(A, TRUE_A, rtol=1e-6)
        np.testing.assert_allclose(B, TRUE_B, atol=1e-6)


# --------------------------------------------------------------- recovery
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linking_recovers_shifted_stretched_scale(seed):
    old, new, _ = make_pair(seed, A=TRUE_A, B=TRUE_B)
    L = link(old, new)
    assert L.A.shape == (400,) and L.n_common == 300
    assert L.A_interval[0] < TRUE_A < L.A_interval[1]
    assert L.B_interval[0] < TRUE_B < L.B_interval[1]
    assert abs(L.A_mean - TRUE_A) < 0.04 and abs(L.B_mean - TRUE_B) < 0.04
    assert L.A_interval[1] - L.A_interval[0] < 0.1  # the draws carry real, small uncertainty
    if seed == 0:  # a chosen anchor set
        sub = link(old, new, anchors=old.items[:60])
        assert set(sub.anchors) <= set(old.items[:60]) and sub.n_common == 300
        assert sub.A_interval[0] < TRUE_A < sub.A_interval[1]


def test_stocking_lord_recovers_scale_with_drifted_items():
    old, new, moved = make_pair(3, A=TRUE_A, B=TRUE_B, shift_frac=0.05, one_sided=True)
    L = link(old, new, method="stocking-lord")
    assert L.method == "stocking-lord"
    assert L.A_interval[0] < TRUE_A < L.A_interval[1]
    assert L.B_interval[0] < TRUE_B < L.B_interval[1]
    assert set(L.excluded) <= moved and len(L.excluded) >= 0.8 * len(moved)


# ---------------------------------------------------------------- detection
def test_detects_shifted_difficulties():
    # measured (seeds 0-9): recall mean 0.90 (worst 0.73), precision mean 0.99 (worst 0.93)
    rec, prec = [], []
    for s in SEEDS:
        old, new, moved = make_pair(s, shift_frac=0.05)
        recall, precision, _ = rates(drift(old, new), moved)
        rec.append(recall)
        prec.append(precision)
    assert np.mean(rec) >= 0.8 and min(rec) >= 0.6
    assert np.mean(prec) >= 0.8 and min(prec) >= 0.8


def test_stable_items_rarely_flagged():
    # measured (seeds 0-9): no stable item flagged in any seed (0 of 3000)
    fpr = [rates(drift(*make_pair(s)[:2]), set())[2] for s in SEEDS]
    assert np.mean(fpr) <= 0.05 and max(fpr) <= 0.05


def test_purification_keeps_link_right_under_drift_and_rescaling():
    # measured (seeds 0-9, 15 items all moved +1.0): recall mean 0.87 (worst 0.73),
    # precision 1.0; |B error| mean 0.011 (worst 0.026) purified, 0.037 (0.060) not
    rec, prec, err_pure, err_raw = [], [], [], []
    for s in SEEDS:
        old, new, moved = make_pair(s, A=TRUE_A, B=TRUE_B, shift_frac=0.05, one_sided=True)
        r = drift(old, new)
        recall, precision, _ = rates(r, moved)
        rec.append(recall)
        prec.append(precision)
        err_pure.append(abs(r.linking.B_mean - TRUE_B))
        err_raw.append(abs(link(old, new, purify=False).B_mean - TRUE_B))
        assert r.linking.purification["stable"]
        assert set(r.linking.excluded) <= set(r.drifted_items)
    assert np.mean(rec) >= 0.8 and np.mean(prec) >= 0.8 and min(prec) >= 0.8
    assert max(err_pure) < 0.04
    assert np.mean(err_pure) < 0.5 * np.mean(err_raw)  # drifted anchors would bias B


def test_drift_in_discrimination_is_flagged():
    old, new, _ = make_pair(4)
    a = new.a.values.copy()
    a[..., :10] *= 2.5  # log 2.5 = 0.92 > log 1.5
    new = ItemBank.from_draws(a, new.b.values, items=list(new.items), source="new")
    r = drift(old, new)
    assert set(new.items[:10]) <= set(r.drifted_items)
    assert r.n_drifted_a >= 10
    top = r.table.head(10)
    assert (top["delta_log_a_mean"] > 0.5).all() and (top["delta_a_mean"] > 0).all()


# ------------------------------------------------------------------- errors
def test_no_common_items_is_a_clear_error():
    old = point_bank(np.ones(6), np.arange(6.0), list("abcdef"), source="bank-one.csv")
    new = point_bank(np.ones(6), np.arange(6.0), list("uvwxyz"), source="bank-two.csv")
    with pytest.raises(BankError, match="no common items") as exc:
        link(old, new)
    assert "bank-one.csv" in str(exc.value) and "bank-two.csv" in str(exc.value)


def test_too_few_common_items_is_a_clear_error():
    old = point_bank(np.ones(6), np.arange(6.0), list("abcdef"), source="one")
    new = point_bank(np.ones(6), np.arange(6.0), list("abcxyz"), source="two")
    with pytest.raises(BankError, match=r"only 3 common item\(s\).*at least 5"):
        drift(old, new)


def test_other_errors():
    old, new, _ = make_pair(0, n_items=30)
    with pytest.raises(BankError, match="not in both banks"):
        link(old, new, anchors=["q0001", "nope"])
    with pytest.raises(ValueError, match="method"):
        link(old, new, method="haebara")
    L = link(old, new)
    with pytest.raises(BankError, match="computed for bank"):
        apply_linking(old, L)
    with pytest.raises(BankError, match="linking is of bank"):
        drift(new, old, linking=L)
    # everything moved: no stable anchors left
    shifted = ItemBank.from_draws(new.a.values, new.b.values + np.linspace(-5, 5, 30),
                                  items=list(new.items), source="s")  # fmt: skip
    with pytest.raises(BankError, match="left after purification"):
        link(old, shifted)


# ------------------------------------------------------ apply_linking, report
def test_apply_linking_maps_draws_and_records_lineage():
    old, new, _ = make_pair(6, A=TRUE_A, B=TRUE_B, draws_new=300, subjects=True)
    L = link(old, new)
    assert len(L.A) == 400 and len(np.unique(L.new_draws)) == 400
    linked = apply_linking(new, L)
    assert linked.b.shape == new.b.shape == (2, 300, 300)
    flat_b = linked.b.values.reshape(600, -1)[L.new_draws]
    raw_b = new.b.values.reshape(600, -1)[L.new_draws]
    np.testing.assert_allclose(flat_b, L.A[:, None] * raw_b + L.B[:, None])
    lin = linked.meta.lineage
    assert lin["parent_config_hash"] == old.config_hash
    assert lin["unlinked_config_hash"] == new.config_hash
    assert lin["method"] == "mean-sigma" and lin["n_anchors"] == 300
    assert lin["A"]["low"] < lin["A"]["mean"] < lin["A"]["high"]
    assert linked.config_hash != new.config_hash
    assert linked.meta.data_fingerprint == new.meta.data_fingerprint
    json.dumps(lin)
    # calibration abilities back on the old scale (the series was mapped to the new one)
    theta = linked.subjects["theta_mean"].to_numpy()
    truth = new.subjects["theta_mean"].to_numpy() * TRUE_A + TRUE_B
    np.testing.assert_allclose(theta, truth, atol=0.1)
    # the linked bank agrees with the old one: no rescaling left, nothing drifted
    again = drift(old, linked)
    assert abs(again.linking.A_mean - 1) < 0.01 and abs(again.linking.B_mean) < 0.01
    assert again.n_drifted == 0


def test_apply_linking_maps_hyperparameters_and_survives_save(tmp_path):
    old, new, _ = make_pair(2, n_items=40, A=TRUE_A, B=TRUE_B)
    rng = np.random.default_rng(0)
    draws = ("chain", "draw")
    post = new.posterior.assign(
        theta=((*draws, "subject"), rng.normal(size=(2, 200, 6))),
        mu_b=(draws, rng.normal(size=(2, 200))),
        sigma_b=(draws, rng.gamma(4.0, 0.25, (2, 200))),
        mu_log_a=(draws, rng.normal(size=(2, 200))),
        sigma_log_a=(draws, rng.gamma(4.0, 0.1, (2, 200))),
    )
    new = ItemBank(tree=xr.DataTree.from_dict({"posterior": post}), meta=new.meta)
    L = link(old, new)
    linked = apply_linking(new, L).posterior
    A, B = L.A.reshape(2, 200), L.B.reshape(2, 200)
    np.testing.assert_allclose(linked["theta"], A[..., None] * post["theta"] + B[..., None])
    np.testing.assert_allclose(linked["mu_b"], A * post["mu_b"] + B)
    np.testing.assert_allclose(linked["sigma_b"], A * post["sigma_b"])
    np.testing.assert_allclose(linked["mu_log_a"], post["mu_log_a"] - np.log(A))
    np.testing.assert_array_equal(linked["sigma_log_a"], post["sigma_log_a"])
    assert linked["theta"].dims == post["theta"].dims
    bank = apply_linking(new, L)
    back = ItemBank.load(bank.save(tmp_path / "linked.nc"))
    assert back.meta.lineage == bank.meta.lineage and back.config_hash == bank.config_hash


def test_report_dict_table_and_one_bank_items():
    old, new, moved = make_pair(7, shift_frac=0.05)
    keep = list(new.items[5:]) + ["extra1", "extra2"]
    a = np.concatenate([new.a.values[..., 5:], np.ones((2, 200, 2))], axis=-1)
    b = np.concatenate([new.b.values[..., 5:], np.zeros((2, 200, 2))], axis=-1)
    new = ItemBank.from_draws(a, b, items=keep, source="new")
    r = drift(old, new)
    assert r.only_old == old.items[:5] and r.only_new == ("extra1", "extra2")
    assert r.n_common == 295 == len(r.table)
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d) >= {"linking", "items", "counts", "only_in_old", "only_in_new"}
    assert set(d["items"][0]) == {
        "item", "delta_a_mean", "delta_b_mean", "p_drift_a", "p_drift_b", "drifted",
    }  # fmt: skip
    assert d["counts"]["n_drifted"] == r.n_drifted == len(r.drifted_items)
    assert r.drifted_items == tuple(i["item"] for i in d["items"] if i["drifted"])
    assert set(r.drifted_items) == set(r.table.loc[r.table["drifted"], "item"])
    score = np.maximum(r.table["p_drift_a"], r.table["p_drift_b"]).to_numpy()
    assert (np.diff(score) <= 0).all()  # ranked
    assert r.table["drifted"].to_numpy().tolist() == list(
        (r.table["p_drift_a"] > DEFAULT_PROB) | (r.table["p_drift_b"] > DEFAULT_PROB)
    )
    text = str(r)
    assert f"{r.n_drifted} of 295 common items drifted" in text and "only in the new" in text
    assert r.drifted_items[0] in text


def test_seeded_same_inputs_same_output():
    old, new, _ = make_pair(8, A=TRUE_A, B=TRUE_B, shift_frac=0.05, draws_new=250)
    one, two = drift(old, new, seed=3), drift(old, new, seed=3)
    np.testing.assert_array_equal(one.linking.A, two.linking.A)
    np.testing.assert_array_equal(one.linking.new_draws, two.linking.new_draws)
    pd.testing.assert_frame_equal(one.table, two.table)
    assert one.to_dict() == two.to_dict()
    other = drift(old, new, seed=4)
    assert not np.array_equal(one.linking.new_draws, other.linking.new_draws)


def test_plot_drift_returns_figure():
    import matplotlib.pyplot as plt

    from fluid_bayes.study.plots import plot_drift

    old, new, _ = make_pair(9, shift_frac=0.05)
    fig = plot_drift(drift(old, new))
    try:
        assert fig.axes and fig.axes[0].get_xlabel().startswith("change of difficulty")
    finally:
        plt.close(fig)
