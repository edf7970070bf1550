"""Slow checks (``make test-slow``): parameter recovery and real-data convergence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import PACKAGE_DATA

from fluid_bayes import HierarchicalTwoPL, read_responses
from fluid_bayes.simulate import simulate_2pl, to_sample_scale

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
    print(path, conv)
    assert conv.max_rhat <= 1.01
    assert conv.divergences == 0
