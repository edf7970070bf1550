"""Refit advice against its posterior predictive reference (synthetic banks, no sampling).

The counting triggers of :func:`advise` compare the number of new models at the ceiling
or beyond the calibrated range with the counts of sets simulated from the bank's own
population (:mod:`fluid_bayes.upkeep.reference`). Checked here: the vectorized posterior
against a direct grid, the reference's tail probability against an exact computation,
both sides of the decision at 10 and 100 new models, the JSON and the option errors.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import with_abilities
from scipy.special import logsumexp
from scipy.stats import binom

from fluid_bayes.bank import ItemBank
from fluid_bayes.cli.main import main
from fluid_bayes.data.responses import from_array
from fluid_bayes.exceptions import OptionError
from fluid_bayes.irt import icc
from fluid_bayes.upkeep.advice import RefitThresholds, advise, diagnose
from fluid_bayes.upkeep.newmodels import check_new_models
from fluid_bayes.upkeep.reference import (
    PosteriorScorer,
    simulate_reference,
    tail_probability,
)


def _direct_posterior(y, a, b, t, half=3.0, n=20001):
    """Mixture posterior on a fine grid around the prior: mean, SD, P(theta > t)."""
    nodes = np.linspace(-8, 8, n)
    m = ~np.isnan(y)
    x = a[:, None, m] * (nodes[None, :, None] - b[:, None, m])  # (D, G, K)
    ll = np.where(y[m] == 1.0, -np.logaddexp(0, -x), -np.logaddexp(0, x)).sum(axis=2)
    lw = logsumexp(ll, axis=0) - 0.5 * nodes**2
    w = np.exp(lw - lw.max())
    w /= w.sum()
    mean = (w * nodes).sum()
    return mean, np.sqrt((w * nodes**2).sum() - mean**2), w[nodes > t].sum()


def test_scorer_matches_a_direct_grid():
    rng = np.random.default_rng(3)
    a, b = np.exp(rng.normal(0, 0.3, (12, 40))), rng.normal(0, 1, (12, 40))
    y = (rng.random((6, 40)) < icc(rng.normal(0, 1.5, 6)[:, None], a[0], b[0])).astype(float)
    y[2, :15] = np.nan  # a model with missing answers has its own C table
    y[4] = 1.0  # and one with everything right
    info = (a**2 * 0.25).sum(axis=1).max()
    res = PosteriorScorer(a, b, info).score(y, np.array([0.5, 1.2]))
    for i in range(6):
        mean, sd, above = _direct_posterior(y[i], a, b, 0.5)
        assert res["theta_mean"][i] == pytest.approx(mean, abs=1e-4)
        assert res["theta_sd"][i] == pytest.approx(sd, abs=1e-4)
        assert res["above"][i, 0] == pytest.approx(above, abs=2e-3)
        assert res["above"][i, 1] == pytest.approx(_direct_posterior(y[i], a, b, 1.2)[2], abs=2e-3)


def test_reference_tail_probability_against_exact_counts():
    """4 items, 3 worlds: every answer pattern enumerated, abilities by quadrature."""
    rng = np.random.default_rng(5)
    n_items, n_worlds, n_cal, n_models = 4, 3, 6, 3
    a_s, b_s = np.exp(rng.normal(0.3, 0.2, (8, n_items))), rng.normal(0, 1, (8, n_items))
    a_t = np.exp(rng.normal(0.3, 0.2, (n_worlds, n_items)))
    b_t = rng.normal(0, 1, (n_worlds, n_items))
    cal = rng.normal(0, 1, (n_worlds, n_cal))
    t_cal = 0.8
    scorer = PosteriorScorer(a_s, b_s, (a_s**2 / 4).sum(axis=1).max())
    # the flag of every pattern, from the direct grid (P(theta > t_cal) >= 0.5)
    patterns = ((np.arange(16)[:, None] >> np.arange(n_items)) & 1).astype(float)
    p_above = np.array([_direct_posterior(y, a_s, b_s, t_cal)[2] for y in patterns])
    assert np.abs(p_above - 0.5).min() > 0.01  # no pattern on the fence
    flag = p_above >= 0.5
    # exact per-model flag probability in each world: smoothed calibration abilities
    z, wz = np.polynomial.hermite_e.hermegauss(60)
    wz = wz / wz.sum()
    q = np.empty(n_worlds)
    for w in range(n_worlds):
        c = cal[w]
        q75, q25 = np.percentile(c, [75, 25])
        h = 0.9 * min(c.std(), (q75 - q25) / 1.34) * n_cal**-0.2
        theta = (c[:, None] + h * z[None, :]).ravel()
        weight = np.repeat(np.full(n_cal, 1 / n_cal), z.size) * np.tile(wz, n_cal)
        p = icc(theta[:, None], a_t[w], b_t[w])  # (Q, J)
        lik = np.prod(np.where(patterns[:, None, :] == 1, p, 1 - p), axis=2)  # (16, Q)
        q[w] = (lik @ weight)[flag].sum()
    ref = simulate_reference(
        scorer, a_true=a_t, b_true=b_t, answered=np.ones((n_models, n_items), bool),
        hard=np.ones(n_items, bool), theta_info_high=5.0, calibration_theta_max=t_cal,
        calibration_theta=cal, n_sets=6000, seed=2,
    )  # fmt: skip
    counts = ref.counts(ref.p_above_calibration >= 0.5)
    for c in range(1, n_models + 1):
        exact = np.mean([binom.sf(c - 1, n_models, qw) for qw in q])
        mc = np.mean(counts >= c)
        assert mc == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 6000) + 1e-3)
        assert tail_probability(c, counts) == pytest.approx((1 + np.sum(counts >= c)) / 6001)


def test_tail_probability_is_the_monte_carlo_p_value():
    ref = np.array([0, 0, 1, 2, 0, 5, 1, 0, 0, 3])
    assert tail_probability(0, ref) == 1.0
    assert tail_probability(2, ref) == pytest.approx(4 / 11)
    assert tail_probability(6, ref) == pytest.approx(1 / 11)


# ----------------------------------------------------------------- both sides
def _bank(seed=1, n_items=120, n_calib=60, b_mean=-0.8):
    """A synthetic bank (easy items by default: a low ceiling) with calibration abilities."""
    rng = np.random.default_rng(seed)
    items = [f"q{j:03d}" for j in range(n_items)]
    subjects = [f"old{i:03d}" for i in range(n_calib)]
    log_a, b = rng.normal(0.2, 0.25, n_items), rng.normal(b_mean, 0.8, n_items)
    theta = rng.normal(size=n_calib)
    theta = (theta - theta.mean()) / theta.std()

    def draws_of(truth, sd):
        return truth + rng.normal(0, sd, (2, 50, truth.size))

    bank = ItemBank.from_draws(np.exp(draws_of(log_a, 0.05)), draws_of(b, 0.1), items=items,
                               source="synthetic")  # fmt: skip
    return with_abilities(bank, draws_of(theta, 0.1), subjects), np.exp(log_a), b, theta


@pytest.fixture(scope="module")
def world():
    return _bank()


def _answers(world, theta, seed, prefix="new"):
    _, a, b, _ = world
    rng = np.random.default_rng(seed)
    y = (rng.random((theta.size, a.size)) < icc(theta[:, None], a, b)).astype(float)
    subjects = [f"{prefix}{k:03d}" for k in range(theta.size)]
    items = [f"q{j:03d}" for j in range(a.size)]
    return from_array(y, subjects=subjects, items=items, source=f"{prefix}.csv")


def _population(world, n, seed):
    """Abilities of the calibration population: a calibration model's, smoothed."""
    _, _, _, theta = world
    rng = np.random.default_rng(seed)
    h = 0.9 * min(theta.std(), np.subtract(*np.percentile(theta, [75, 25])) / 1.34)
    return rng.choice(theta, n) + h * theta.size**-0.2 * rng.standard_normal(n)


@pytest.mark.parametrize("n", [10, 100])
def test_control_sets_keep(world, n):
    bank = world[0]
    new = check_new_models(bank, _answers(world, _population(world, n, n), seed=n), seed=0,
                           person_fit=False)  # fmt: skip
    advice = advise(None, new)
    assert advice.decision == "keep", str(advice)
    tests = {t["trigger"]: t for t in advice.reference_tests}
    assert set(tests) == {"ceiling", "beyond"} and not any(t["fired"] for t in tests.values())
    assert all(t["n_sets"] == 199 and t["level"] == 0.025 for t in tests.values())
    if n == 100:
        # the population itself puts models at the ceiling: the old rule (>= 1) said refit
        assert advice.n_new_models_at_ceiling >= 1
        assert tests["ceiling"]["mean"] >= 1 and tests["ceiling"]["tail_probability"] > 0.025


def test_strong_sets_refit(world):
    # easy items: 10 models above the calibration are at the ceiling (not resolved)
    bank, _, _, theta = world
    strong = np.linspace(theta.max() + 0.5, theta.max() + 1.5, 10)
    new = check_new_models(bank, _answers(world, strong, seed=7, prefix="top"), seed=0,
                           person_fit=False)  # fmt: skip
    advice = advise(None, new)
    assert advice.decision == "refit", str(advice)
    tests = {t["trigger"]: t for t in advice.reference_tests}
    assert tests["ceiling"]["fired"] and tests["ceiling"]["observed"] == 10
    assert tests["ceiling"]["tail_probability"] == pytest.approx(1 / 200)
    assert tests["ceiling"]["quantiles"]["max"] < 10
    # hard items: the same margin above the best calibration model is resolved: beyond
    hard = _bank(seed=2, b_mean=1.0)
    strong = np.linspace(hard[3].max() + 0.5, hard[3].max() + 1.5, 10)
    new = check_new_models(hard[0], _answers(hard, strong, seed=8, prefix="top"), seed=0,
                           person_fit=False)  # fmt: skip
    advice = advise(None, new)
    tests = {t["trigger"]: t for t in advice.reference_tests}
    assert advice.decision == "refit" and tests["beyond"]["fired"], str(advice)
    assert tests["beyond"]["observed"] >= 8 and tests["beyond"]["quantiles"]["max"] <= 2
    assert tests["beyond"]["tail_probability"] == pytest.approx(1 / 200)


def test_json_and_text_hold_the_reference(world):
    bank, _, _, theta = world
    new = check_new_models(bank, _answers(world, _population(world, 5, 1), seed=1), seed=3,
                           reference_sets=49)  # fmt: skip
    advice = advise(None, new)
    d = json.loads(json.dumps(advice.to_dict(), allow_nan=False))
    assert d["reference"] == {"n_sets": 49, "set_size": 5, "population": "calibration",
                              "n_calibration": 60, "seed": 3}  # fmt: skip
    ceiling = next(t for t in d["reference_tests"] if t["trigger"] == "ceiling")
    assert set(ceiling) >= {"observed", "needed", "tail_probability", "level", "fired",
                            "n_sets", "mean", "quantiles"}  # fmt: skip
    assert set(ceiling["quantiles"]) == {"0.5", "0.9", "0.95", "0.99", "max"}
    assert {"theta_mean", "theta_sd", "p_above_info", "hard_accuracy", "sd_ratio",
            "at_ceiling", "ppc_p"} <= set(d["new_models"][0])  # fmt: skip
    text = str(advice)
    assert "reference: 49 sets of 5 model(s)" in text and "ceiling  observed" in text
    assert new.to_dict()["reference"]["n_sets"] == 49
    # seeded: the same seed gives the same reference; another seed another one
    again = check_new_models(bank, _answers(world, _population(world, 5, 1), seed=1), seed=3,
                             reference_sets=49)  # fmt: skip
    assert np.array_equal(again.reference.p_above_calibration, new.reference.p_above_calibration)
    other = check_new_models(bank, _answers(world, _population(world, 5, 1), seed=1), seed=4,
                             reference_sets=49)  # fmt: skip
    assert not np.array_equal(other.reference.p_above_calibration,
                              new.reference.p_above_calibration)  # fmt: skip
    # the reference is reused only for what it was made for
    reused = check_new_models(bank, _answers(world, theta[:5] + 0.1, seed=2), seed=3,
                              reference=new.reference, reference_sets=None)  # fmt: skip
    assert reused.reference is new.reference
    with pytest.raises(OptionError, match="reference: made for another"):
        check_new_models(bank, _answers(world, theta[:4], seed=2), seed=3, reference=new.reference)
    # a reference for another set size is not used
    fewer = dataclasses.replace(new, table=new.table.iloc[:3])
    assert any("made for sets of 5, not 3" in n for n in advise(None, fewer).notes)
    assert advise(None, fewer).reference_tests == ()
    # without a reference the bare counts decide, and the advice says so
    bare = advise(None, dataclasses.replace(new, reference=None))
    assert bare.reference is None and bare.reference_tests == ()
    assert any("judged bare" in n for n in bare.notes)


def test_normal_population_and_the_level(world):
    bank, _, _, _ = world
    data = _answers(world, _population(world, 6, 2), seed=2)
    new = check_new_models(bank, data, seed=0, population="normal", reference_sets=99)
    assert new.reference.population == "normal"
    # alpha is split over the counting triggers on (Bonferroni)
    off = advise(None, new, thresholds=RefitThresholds(beyond_share=None, alpha=0.1))
    assert [t["level"] for t in off.reference_tests] == [0.1]
    mis = advise(None, new, thresholds=RefitThresholds(misfit_share=0.5))
    levels = {t["trigger"]: t["level"] for t in mis.reference_tests}
    assert levels == pytest.approx({"ceiling": 0.05 / 3, "beyond": 0.05 / 3, "misfit": 0.05 / 3})
    m = next(t for t in mis.reference_tests if t["trigger"] == "misfit")
    k = int((new.table["ppc_p"] < 0.01).sum())
    assert m["reference"] == "binomial" and m["tail_probability"] == pytest.approx(
        binom.sf(k - 1, 6, 0.01)
    )


def test_option_errors_are_one_line(world, tmp_path, capsys):
    bank = world[0]
    data = _answers(world, np.zeros(2), seed=0)
    cases = [
        (lambda: RefitThresholds(alpha=0.0), r"alpha must be a finite number in \(0, 1\)"),
        (lambda: RefitThresholds(min_at_ceiling=0), "thresholds.min_at_ceiling must be an integer"),
        (lambda: RefitThresholds(beyond_share=1.5), "thresholds.beyond_share must be"),
        (lambda: check_new_models(bank, data, reference_sets=0), "reference_sets must be an"),
        (lambda: check_new_models(bank, data, population="uniform"), "population must be one of"),
        (lambda: diagnose(bank, data, thresholds={"alpah": 0.1}), r"unknown threshold\(s\)"),
        (lambda: diagnose(bank, data, reference_sets=-1), "reference_sets must be"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(OptionError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    path = bank.save(tmp_path / "bank.nc")
    csv = tmp_path / "new.csv"
    data.to_frame().to_csv(csv)
    assert main(["diagnose", str(path), "--new", str(csv), "--reference-sets", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--reference-sets" in err and len(err.splitlines()) == 1
    assert main(["diagnose", str(path), "--new", str(csv), "--thresholds", '{"alpha": 2}']) == 2
    assert "thresholds.alpha must be" in capsys.readouterr().err
    assert main(["diagnose", str(path), "--new", str(csv), "--reference-sets", "20",
                 "--population", "normal", "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["reference"]["n_sets"] == 20 and out["reference"]["population"] == "normal"
