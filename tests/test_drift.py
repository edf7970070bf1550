"""Linking and item drift: synthetic posteriors (no sampling), and two tiny real fits."""

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
    DEFAULT_FDR,
    apply_linking,
    drift,
    fdr_flags,
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
    # purified by the FDR rule: at most ~5 % of the excluded are stable items
    assert len(set(L.excluded) - moved) <= 1 and len(set(L.excluded) & moved) >= 0.8 * len(moved)


# ---------------------------------------------------------------- detection
def test_detects_shifted_difficulties():
    # measured (seeds 0-9, FDR 0.05): recall mean 0.99 (worst 0.93), precision mean 0.92
    # (worst 0.83); the per-item rule prob=0.9 had 0.91 (0.73) and 0.99 (0.93)
    rec, prec = [], []
    for s in SEEDS:
        old, new, moved = make_pair(s, shift_frac=0.05)
        recall, precision, _ = rates(drift(old, new), moved)
        rec.append(recall)
        prec.append(precision)
    assert np.mean(rec) >= 0.8 and min(rec) >= 0.6
    assert np.mean(prec) >= 0.8 and min(prec) >= 0.8


def test_stable_items_rarely_flagged():
    # measured (seeds 0-9, FDR 0.05): no stable item flagged (0 of 3000; prob=0.9: 1)
    fpr = [rates(drift(*make_pair(s)[:2]), set())[2] for s in SEEDS]
    assert np.mean(fpr) <= 0.05 and max(fpr) <= 0.05


def test_purification_keeps_link_right_under_drift_and_rescaling():
    # measured (seeds 0-9, 15 items all moved +1.0, FDR 0.05): recall mean 0.96 (worst
    # 0.87), precision 0.93 (worst 0.82); |B error| mean 0.012 (worst 0.030) purified,
    # 0.037 (0.060) not
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
        "item", "delta_a_mean", "delta_b_mean", "p_drift", "p_drift_a", "p_drift_b", "drifted",
    }  # fmt: skip
    assert d["counts"]["n_drifted"] == r.n_drifted == len(r.drifted_items)
    assert r.drifted_items == tuple(i["item"] for i in d["items"] if i["drifted"])
    assert set(r.drifted_items) == set(r.table.loc[r.table["drifted"], "item"])
    p = r.table["p_drift"].to_numpy()
    assert (np.diff(p) <= 0).all()  # ranked
    assert (p >= np.maximum(r.table["p_drift_a"], r.table["p_drift_b"])).all()  # the union
    # the flags: the top k by p_drift, k the longest run with mean(1 - p) <= fdr
    k = max(k for k in range(len(p) + 1) if k == 0 or np.mean(1 - p[:k]) <= DEFAULT_FDR)
    assert r.table["drifted"].tolist() == [True] * k + [False] * (len(p) - k)
    assert r.expected_false == pytest.approx(np.sum(1 - p[:k]))
    assert d["expected_false"] == pytest.approx(r.table["expected_false"].iloc[k - 1])
    assert d["p_reached"] == pytest.approx(p[k - 1]) and d["rule"]["fdr"] == DEFAULT_FDR
    assert r.table["expected_fdp"].iloc[k - 1] <= DEFAULT_FDR < r.table["expected_fdp"].iloc[k]
    text = str(r)
    assert f"{r.n_drifted} of 295 common items drifted" in text and "only in the new" in text
    assert f"expected false flags {r.expected_false:.2f}" in text and "<= 0.05" in text
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


# ------------------------------------------------------------- the FDR rule
def brute_force(p: np.ndarray, fdr: float) -> tuple[int, float]:
    """Size and expected false flags of the largest subset with mean(1 - p) <= fdr."""
    best = (0, 0.0)
    for mask in range(1, 1 << len(p)):
        pick = [j for j in range(len(p)) if mask >> j & 1]
        false = float(np.sum(1 - p[pick]))
        if false <= fdr * len(pick) and (len(pick), -false) > (best[0], -best[1]):
            best = (len(pick), false)
    return best


@pytest.mark.parametrize("seed", range(8))
def test_fdr_flags_is_the_largest_admissible_set(seed):
    rng = np.random.default_rng(seed)
    shape = [(0.3, 0.3), (5.0, 0.2), (0.2, 3.0), (1.0, 1.0)][seed % 4]
    p = rng.beta(*shape, size=11)
    for fdr in (0.01, 0.05, 0.2, 0.5):
        flags = fdr_flags(p, fdr)
        size, false = brute_force(p, fdr)
        assert flags.sum() == size
        assert np.sum(1 - p[flags]) == pytest.approx(false, abs=1e-12)
        if flags.any() and not flags.all():
            assert p[flags].min() >= p[~flags].max()  # the most probable items


def test_fdr_flags_edges_and_ties():
    assert fdr_flags(np.ones(4), 0.05).all()
    assert not fdr_flags(np.array([0.94, 0.5, 0.0]), 0.05).any()  # 1 - 0.94 > 0.05
    p = np.array([0.9, 0.97, 0.97])  # top 2: 0.03 each; all 3: 0.16 / 3 = 0.053
    assert fdr_flags(p, 0.05).tolist() == [False, True, True]
    assert fdr_flags(p, 0.06).all()
    # beside certain flags, a less certain one is admitted: (0 + 0 + 0 + 0.18) / 4 <= 0.05
    assert fdr_flags(np.array([1.0, 1.0, 1.0, 0.82, 0.5]), 0.05).tolist() == [True] * 4 + [False]
    assert fdr_flags(np.array([]), 0.05).shape == (0,)


def test_rule_options_are_checked(tmp_path, capsys):
    from fluid_bayes.cli.main import main
    from fluid_bayes.exceptions import OptionError

    old, new, _ = make_pair(0, n_items=30)
    for kw, name in (({"fdr": 1.0}, "fdr"), ({"fdr": 0.0}, "fdr"), ({"prob": 1.5}, "prob"),
                     ({"threshold_b": 0.0}, "threshold_b")):  # fmt: skip
        with pytest.raises(OptionError, match=f"^{name} must be a finite number"):
            drift(old, new, **kw)
    with pytest.raises(OptionError, match="^fdr must be"):
        link(old, new, fdr=-0.1)
    # prob is the per-item alternative: the report says so, and flags p_drift > prob
    r = drift(old, new, prob=0.5)
    assert r.fdr is None and r.prob == 0.5 and "no multiplicity control" in str(r)
    assert r.table["drifted"].tolist() == (r.table["p_drift"] > 0.5).tolist()
    one, two = old.save(tmp_path / "old.nc"), new.save(tmp_path / "new.nc")
    for args, message in (
        (["--fdr", "1.5"], "argument --fdr: must be a finite number in (0, 1)"),
        (["--fdr", "0"], "argument --fdr: must be"),
        (["--fdr", "0.1", "--prob", "0.9"], "not allowed with argument"),
    ):
        assert main(["drift", str(one), str(two), *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["drift", str(one), str(two), "--fdr", "0.2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["rule"]["fdr"] == 0.2 and d["rule"]["prob"] is None
    assert {"expected_false", "expected_fdp", "p_reached"} <= set(d)


# ---------------------------------------------------- real fits, both sides
TINY = {"draws": 150, "tune": 200, "chains": 2}


@pytest.fixture(scope="module")
def real_fits():
    """Two calibrations of 30 items by 300 subjects each (the second population shifted
    and wider); the second once unchanged and once with items 0 and 1 harder by 1.2 (the
    same way) and item 2's answers reversed (a flipped key)."""
    import warnings

    from fluid_bayes import HierarchicalTwoPL, from_array
    from fluid_bayes.irt import icc

    rng = np.random.default_rng(19)
    a, b = np.exp(rng.normal(0.2, 0.25, 30)), rng.normal(0, 0.8, 30)
    th1, th2 = rng.normal(0, 1, 300), rng.normal(0.5, 1.2, 300)
    items = [f"i{j:02d}" for j in range(30)]
    y1 = (rng.random((300, 30)) < icc(th1[:, None], a, b)).astype(float)
    u2 = rng.random((300, 30))
    b_moved = b.copy()
    b_moved[:2] += 1.2
    same = (u2 < icc(th2[:, None], a, b)).astype(float)
    moved = (u2 < icc(th2[:, None], a, b_moved)).astype(float)
    moved[:, 2] = 1 - moved[:, 2]

    def fit(y, tag):
        data = from_array(y, subjects=[f"{tag}{k}" for k in range(300)], items=items, source=tag)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return HierarchicalTwoPL(likelihood="joint").fit(data, seed=5, **TINY)

    B_true = (th2.mean() - th1.mean()) / th1.std()
    return fit(y1, "old"), fit(same, "same"), fit(moved, "moved"), B_true


def test_real_fits_drifted_items_flagged(real_fits):
    old, _, new, B_true = real_fits
    r = drift(old, new)
    assert {"i00", "i01", "i02"} <= set(r.drifted_items) and r.n_drifted <= 4
    t = r.table.set_index("item")
    assert t.loc["i02", "p_drift_a"] > 0.9  # the flipped key: its slope collapsed
    assert (t.loc[["i00", "i01"], "delta_b_mean"] > 0.6).all()
    # purification: the link left the moved items out and found the population shift
    assert {"i00", "i01", "i02"} <= set(r.linking.excluded)
    assert abs(r.linking.B_mean - B_true) < 0.1  # measured 0.03; not purified: 0.14
    raw = link(old, new, purify=False)
    assert abs(r.linking.B_mean - B_true) < 0.5 * abs(raw.B_mean - B_true)
    # p_drift by hand from the banks' draws and the linking's constants
    L = r.linking
    draws = {k: getattr(bank, k).transpose("chain", "draw", "item").values.reshape(-1, 30)
             for bank, k in ((old, "a"), (old, "b"))}  # fmt: skip
    a_new = new.a.transpose("chain", "draw", "item").values.reshape(-1, 30)[L.new_draws]
    b_new = new.b.transpose("chain", "draw", "item").values.reshape(-1, 30)[L.new_draws]
    a_old, b_old = draws["a"][L.old_draws], draws["b"][L.old_draws]
    moved_b = np.abs(L.A[:, None] * b_new + L.B[:, None] - b_old) > 0.5
    moved_a = np.abs(np.log(a_new / L.A[:, None] / a_old)) > math.log(1.5)
    p = pd.Series((moved_b | moved_a).mean(0), index=list(old.items))
    np.testing.assert_allclose(t.loc[list(old.items), "p_drift"], p, atol=1e-12)
    assert r.expected_false == pytest.approx(float((1 - p[list(r.drifted_items)]).sum()))


def test_real_fits_nothing_changed_few_flags(real_fits):
    old, same, _, B_true = real_fits
    r = drift(old, same)
    assert r.n_drifted <= 1 and r.expected_false <= 0.05
    assert abs(r.linking.B_mean - B_true) < 0.2
