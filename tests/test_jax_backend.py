"""The calibration's JAX path (nutpie's JAX backend, the fused likelihood through its
JAX registration) agrees with the default numba path on a real bank, on CPU."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import PACKAGE_DATA

pytest.importorskip("jax")


def test_jax_backend_agrees_with_the_default_within_monte_carlo_error(lsat7_bank):
    from arviz_stats import mcse

    from fluid_bayes import HierarchicalTwoPL, read_responses

    data = read_responses(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jax_bank = HierarchicalTwoPL().fit(data, seed=2, backend="jax")
    assert jax_bank.meta.sampler["backend"] == "jax"
    assert jax_bank.meta.convergence["ok"] and lsat7_bank.meta.convergence["ok"]
    for name in ("a", "b"):
        means, errors = [], []
        for bank in (lsat7_bank, jax_bank):
            draws = bank.posterior[name]
            means.append(draws.mean(("chain", "draw")).values)
            errors.append(np.asarray(mcse(draws, method="mean")))
        z = (means[0] - means[1]) / np.hypot(*errors)
        assert np.all(np.abs(z) < 4.5), (name, z)  # 10 parameters: a 4.5-sigma band
        assert np.max(np.abs(means[0] - means[1])) < 0.1
