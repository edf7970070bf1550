"""The 2PL math: properties (Hypothesis) and checks against independent computations."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from fluid_bayes import irt

finite = st.floats(-8, 8, allow_nan=False)
slope = st.floats(0.05, 5, allow_nan=False)


@given(theta=finite, a=slope, b=finite)
def test_information_nonnegative_and_bounded(theta, a, b):
    info = irt.fisher_information(theta, a, b)
    assert 0.0 <= info <= a * a / 4 + 1e-12


@given(t1=finite, t2=finite, a=slope, b=finite)
def test_icc_increasing_in_theta(t1, t2, a, b):
    lo, hi = sorted((t1, t2))
    assert irt.icc(lo, a, b) <= irt.icc(hi, a, b)


@given(theta=finite, a=slope, b=finite)
def test_information_is_derivative_of_icc_times_slope(theta, a, b):
    # I = a * dP/dtheta for the 2PL
    h = 1e-6
    dp = (irt.icc(theta + h, a, b) - irt.icc(theta - h, a, b)) / (2 * h)
    assert np.isclose(irt.fisher_information(theta, a, b), a * dp, rtol=1e-4, atol=1e-9)


def test_stable_far_in_the_tails():
    ll = irt.log_likelihood_cells(np.array([1.0, 0.0]), 0.0, 50.0, 40.0)
    assert np.all(np.isfinite(ll)) and ll[0] < -1000 and ll[1] > -1e-6
    assert (
        irt.fisher_information(0.0, 50.0, 40.0) == 0.0
        or irt.fisher_information(0.0, 50.0, 40.0) < 1e-300
    )
    assert np.isnan(irt.log_likelihood_cells(np.array([np.nan]), 0.0, 1.0, 0.0)).sum() == 0


@settings(max_examples=20, deadline=None)
@given(a=st.lists(slope, min_size=1, max_size=6), seed=st.integers(0, 10_000))
# found by Hypothesis when quad ran at its default tolerance, which was off by 4.6e-4
# here (the grid agreed with a 2-million-point sum to 1e-15)
@example(a=[1.0, 2.0, 1.0, 1.0, 2.0, 5.0], seed=127)
def test_grid_posterior_matches_quadrature(a, seed):
    rng = np.random.default_rng(seed)
    a = np.array(a)
    b = rng.normal(size=a.size)
    y = (rng.random(a.size) < 0.5).astype(float)
    nodes, logw = irt.normal_grid(401, 8.0)
    post = np.exp(irt.grid_log_posterior(y[None, :], a, b, nodes, logw))[0]
    mean_grid = float(post @ nodes)

    def lik(t):
        p = irt.icc(t, a, b)
        return np.prod(np.where(y == 1, p, 1 - p)) * norm.pdf(t)

    tight = {"limit": 200, "epsabs": 1e-14}
    z = integrate.quad(lik, -10, 10, **tight)[0]
    mean_quad = integrate.quad(lambda t: t * lik(t), -10, 10, **tight)[0] / z
    assert abs(mean_grid - mean_quad) < 1e-4
