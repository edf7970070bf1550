"""The fused 2PL log-likelihood Op: numba kernel, JAX and numpy against scipy."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import expit, log_expit

from fluid_bayes.calibration.loglik import (
    exp_nonpositive,
    joint_loglik,
    log1p_unit,
    loglik_and_grads_numba,
)


def _scipy_reference(theta, a, b, y, mask):
    """Log-likelihood and gradient from scipy's logistic functions, no shared code."""
    d = theta[:, None] - b[None, :]
    x = a[None, :] * d
    ll = np.where(y > 0.5, log_expit(x), log_expit(-x)) * mask
    r = (y - expit(x)) * mask
    return ll.sum(), r @ a, (d * r).sum(axis=0), -a * r.sum(axis=0)


def _answers(n, n_items, *, seed, missing=0.1, spread=1.0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, spread, n)
    a = np.exp(rng.normal(0.0, 0.8, n_items))
    b = rng.normal(0.0, spread, n_items)
    y = (rng.random((n, n_items)) < expit(a * (theta[:, None] - b))).astype(float)
    mask = (rng.random((n, n_items)) >= missing).astype(float)
    return theta, a, b, y * mask, mask


def test_exp_nonpositive_matches_numpy_to_two_ulp():
    t = -np.concatenate(
        [np.linspace(0.0, 60.0, 120_001), np.geomspace(1e-300, 1.0, 2_000), [0.0, 708.0]]
    )
    got = np.array([exp_nonpositive(v) for v in t])
    want = np.exp(t)
    assert np.max(np.abs(got - want) / want) <= 2 * np.finfo(float).eps
    # below exp(-708) it saturates at a value under 3.3e-308, never 0, inf or NaN
    assert 0.0 < exp_nonpositive(-5000.0) <= np.exp(-708.0) * (1 + 1e-15)


def test_log1p_unit_matches_numpy_to_two_ulp():
    e = np.concatenate([np.geomspace(1e-300, 1.0, 20_000), np.linspace(0.0, 1.0, 100_001)])
    got = np.array([log1p_unit(v) for v in e])
    want = np.log1p(e)
    nonzero = want > 0
    assert np.max(np.abs(got - want)[nonzero] / want[nonzero]) <= 2 * np.finfo(float).eps
    assert log1p_unit(0.0) == 0.0


@pytest.mark.parametrize(
    ("n", "n_items", "missing", "spread"),
    [(40, 300, 0.0, 1.0), (7, 1001, 0.3, 1.0), (25, 60, 0.1, 200.0)],
)
def test_numba_kernel_matches_scipy(n, n_items, missing, spread):
    # spread 200: |a (theta - b)| up to ~10^4, far past exp's range
    args = _answers(n, n_items, seed=n, missing=missing, spread=spread)
    got = loglik_and_grads_numba(*args)
    want = _scipy_reference(*args)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * max(1.0, np.max(np.abs(w))))


def test_gradient_is_the_derivative_of_the_log_likelihood():
    theta, a, b, y, mask = _answers(6, 9, seed=3)
    value, g_theta, g_a, g_b = loglik_and_grads_numba(theta, a, b, y, mask)
    h = 1e-6

    def f(th, aa, bb):
        return float(loglik_and_grads_numba(th, aa, bb, y, mask)[0])

    for vec, grad, which in ((theta, g_theta, 0), (a, g_a, 1), (b, g_b, 2)):
        for k in range(vec.size):
            up, down = [theta.copy(), a.copy(), b.copy()], [theta.copy(), a.copy(), b.copy()]
            up[which][k] += h
            down[which][k] -= h
            numeric = (f(*up) - f(*down)) / (2 * h)
            assert numeric == pytest.approx(grad[k], rel=1e-6, abs=1e-7)
    assert np.isfinite(value)


@pytest.mark.parametrize("mode", ["NUMBA", "JAX", "FAST_COMPILE"])
def test_op_in_every_backend_matches_scipy(mode):
    theta0, a0, b0, y, mask = _answers(12, 30, seed=5, missing=0.2)
    theta, log_a, b = pt.dvector("theta"), pt.dvector("log_a"), pt.dvector("b")
    ll = joint_loglik(theta, pt.exp(log_a), b, y, mask)
    grads = pytensor.grad(ll, [theta, log_a, b])
    fn = pytensor.function([theta, log_a, b], [ll, *grads], mode=mode)
    value, g_theta, g_log_a, g_b = fn(theta0, np.log(a0), b0)
    want = _scipy_reference(theta0, a0, b0, y, mask)
    np.testing.assert_allclose(value, want[0], rtol=1e-12)
    np.testing.assert_allclose(g_theta, want[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_log_a, want[2] * a0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_b, want[3], rtol=1e-10, atol=1e-12)
