"""Slow checks (``make test-slow``): parameter recovery and real-data convergence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import PACKAGE_DATA

from fluid_bayes import HierarchicalTwoPL, read_responses
from fluid_bayes.study.simulate import simulate_2pl, to_sample_scale

pytestmark = pytest.mark.slow


def _coverage(draws, truth, prob=0.90):
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return float(np.mean((lo <= truth) & (truth <= hi)))


# hyperparameters of the shipped ChemBench bank (posterior means, models/chembench.nc)
CHEMBENCH_LIKE = {"mu_b": 0.35, "sigma_b": 0.92, "mu_log_a": 0.31, "sigma_log_a": 0.62}


def test_parameter_recovery_100_x_500():
    sim = to_sample_scale(simulate_2pl(100, 500, seed=42, **CHEMBENCH_LIKE))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL().fit(sim.responses, seed=7)
    assert bank.meta.sampler["likelihood"] == "joint"
    a = bank.a.values.reshape(-1, 500)
    b = bank.b.values.reshape(-1, 500)
    cov = _coverage(np.concatenate([a, b], axis=1), np.concatenate([sim.a, sim.b]))
    print(
        f"recovery 100x500: 90% coverage {cov:.3f}, "
        f"r(b) {np.corrcoef(b.mean(0), sim.b)[0, 1]:.3f}, "
        f"r(a) {np.corrcoef(a.mean(0), sim.a)[0, 1]:.3f}, {bank.convergence}"
    )
    assert 0.85 <= cov <= 0.95
    assert np.corrcoef(b.mean(0), sim.b)[0, 1] >= 0.95
    assert np.corrcoef(a.mean(0), sim.a)[0, 1] >= 0.85


@pytest.mark.parametrize(
    "path", ["chembench/responses.csv", "mmlu_redux_helm/responses.csv"], ids=["chembench", "mmlu"]
)
def test_real_lm_data_converges_with_defaults(path):
    data = read_responses(PACKAGE_DATA / path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL().fit(data, seed=1)
    conv = bank.convergence
    print(path, conv, "draws per chain", bank.meta.sampler["draws"])
    assert conv.max_rhat <= 1.01
    assert conv.min_ess_bulk >= 400
    assert conv.divergences == 0


def ability_coverage(n_calib=30, n_items=200, n_test=100, n_asked=40, seed=0, prob=0.90):
    """Coverage of 90% ability intervals after adaptive sessions, per estimator.

    Calibrate on ``n_calib`` simulated subjects (ChemBench-like item populations);
    ``n_test`` new subjects from the same population then answer ``n_asked`` items
    chosen adaptively (each method its own rule). The truth is put on the bank's scale
    (the calibration sample's), like the bank itself.
    """
    from fluid_bayes.adaptive.ability import grid_summary
    from fluid_bayes.adaptive.selection import BankArrays
    from fluid_bayes.adaptive.session import Session

    sim = simulate_2pl(n_calib, n_items, seed=seed, **CHEMBENCH_LIKE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL().fit(sim.responses, seed=seed, chains=2, draws=500, tune=500)
    rng = np.random.default_rng(seed + 1000)
    theta = rng.normal(size=n_test)
    p = 1 / (1 + np.exp(-sim.a * (theta[:, None] - sim.b)))
    y = (rng.random(p.shape) < p).astype(float)
    truth = (theta - sim.theta.mean()) / sim.theta.std()
    arrays = BankArrays.from_bank(bank)
    col = {i: k for k, i in enumerate(bank.items)}
    out = {}
    # "bayes": the default integration (SessionConfig's), "bayes-mixture" the other one
    for name, method, integration in (("eap", "eap", "mixture"), ("bayes", "bayes", None),
                                      ("bayes-mixture", "bayes", "mixture")):  # fmt: skip
        extra = {} if integration is None else {"integration": integration}
        covered = []
        for k in range(n_test):
            s = Session(bank, method=method, max_items=n_asked, arrays=arrays, **extra)
            while (item := s.next_item()) is not None:
                s.record(item, y[k, col[item]])
            est = grid_summary(*s.posterior()[:1], s.posterior()[1][None, :], prob)[0]
            covered.append(est.hdi_low <= truth[k] <= est.hdi_high)
        out[name] = float(np.mean(covered))
    return out


def test_bayes_intervals_cover_where_eap_undercovers():
    """All test subjects of one calibration share its bank's error, so coverage varies
    a lot between calibrations: average over several."""
    runs = [ability_coverage(seed=s) for s in range(8)]
    cov = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    print("90% interval coverage over 8 calibrations x 100 subjects:", cov, runs)
    # nominal within two Monte Carlo errors of the mean over calibrations: the spread
    # between calibrations is large (0.67-0.95 on 2026-11-29), and a fixed band of
    # +-0.02 was narrower than one standard error
    per_run = np.array([r["bayes"] for r in runs])
    se = per_run.std(ddof=1) / np.sqrt(len(runs))
    assert abs(cov["bayes"] - 0.90) <= 2 * se
    assert se < 0.05  # the check itself is informative
    assert cov["eap"] < cov["bayes"] - 0.02
