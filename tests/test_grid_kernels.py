"""The grid posterior's update kernel against the same update done directly in log space."""

import numpy as np
import pytest
from scipy.special import log_expit, logsumexp

from fluid_bayes.adaptive.grid_kernels import BLOCK, grid_weight_step, grid_window_weights

NODES = np.linspace(-6.0, 6.0, 241)


def _state(rng, n_draws, nodes):
    """Scaled weights (row maxima 1) and log scales of a posterior after a few answers."""
    lw = -0.5 * nodes[None, :] ** 2 + rng.normal(0.0, 3.0, (n_draws, 1)) * nodes[None, :]
    scale = lw.max(axis=1)
    return np.exp(lw - scale[:, None]), scale.copy(), lw


def _direct(lw, lo, hi, a, b, y, nodes):
    """The update in log space: new log weights of the window, their scales and maxima."""
    x = a[:, None] * (nodes[None, lo:hi] - b[:, None])
    new = lw[:, lo:hi] + y * log_expit(x) + (1.0 - y) * log_expit(-x)
    scale = new.max(axis=1)
    return np.exp(new - scale[:, None]), scale


def _draws(rng, n_draws):
    a = np.exp(rng.normal(0.0, 0.6, n_draws))
    a[:3] = [1e5, 40.0, 1e-6]  # a very steep draw (direct exp per node), a steep one, a flat one
    b = rng.normal(0.0, 1.5, n_draws)
    b[3:5] = [-5.9, 5.9]
    return a, b


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("y", [1.0, 0.0, 0.3])
@pytest.mark.parametrize("equal", [True, False])
def test_update_equals_the_log_space_update(y, equal, weighted):
    rng = np.random.default_rng(7)
    nodes = NODES if equal else np.sort(rng.uniform(-6, 6, 241))
    step = float(NODES[1] - NODES[0]) if equal else 0.0
    w, log_scale, lw = _state(rng, 300, nodes)
    a, b = _draws(rng, 300)
    lo, hi = 17, 241 - 2 * BLOCK - 3  # a window that is not a whole number of blocks
    want_w, want_scale = _direct(lw, lo, hi, a, b, y, nodes)
    marginal, rows = np.zeros(hi - lo), np.full(300, np.nan)
    best = grid_weight_step(w, log_scale, lo, hi, a, b, y, nodes, step, marginal, rows,
                            weighted)  # fmt: skip
    # a cell is set to 0 when its weight falls below 1e-300 before the row is rescaled;
    # with a steep draw's tiny row maximum that can be 1e-253 of the row's new maximum
    kept = want_w > 1e-200
    np.testing.assert_allclose(w[:, lo:hi][kept], want_w[kept], rtol=1e-11)
    assert np.all(w[:, lo:hi][want_w < 1e-301] == 0.0)
    np.testing.assert_allclose(log_scale, want_scale, rtol=0, atol=1e-10)
    np.testing.assert_allclose(best, want_w.max(axis=0), rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(rows, want_w.sum(axis=1), rtol=1e-11)
    if weighted:  # the draws weighted by their likelihood: one normalization of all cells
        cells = want_w * np.exp(want_scale - want_scale.max())[:, None]
        want = cells.sum(axis=0) / cells.sum()
    else:  # the mixture: every draw normalized to 1 / S, summed
        want = (want_w / want_w.sum(axis=1, keepdims=True) / want_w.shape[0]).sum(axis=0)
    np.testing.assert_allclose(marginal, want, rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(marginal, grid_window_weights(w, log_scale, lo, hi, not weighted)[1],
                               rtol=1e-13, atol=1e-300)  # fmt: skip
    assert np.all(w[:, :lo] == np.exp(lw[:, :lo] - lw.max(axis=1, keepdims=True)))


def test_no_marginal_when_not_asked_and_same_weights():
    rng = np.random.default_rng(3)
    w, log_scale, _ = _state(rng, 50, NODES)
    a, b = _draws(rng, 50)
    w2, s2 = w.copy(), log_scale.copy()
    step = float(NODES[1] - NODES[0])
    r1, r2 = np.empty(50), np.empty(50)
    b1 = grid_weight_step(w, log_scale, 0, 241, a, b, 1.0, NODES, step, np.zeros(241), r1, True)
    b2 = grid_weight_step(w2, s2, 0, 241, a, b, 1.0, NODES, step, np.zeros(0), r2, True)
    assert np.array_equal(w, w2) and np.array_equal(b1, b2) and np.array_equal(log_scale, s2)
    assert np.array_equal(r1, r2)


def test_a_row_that_loses_all_its_weight_asks_for_a_rebuild():
    """A draw whose window likelihood underflows everywhere: the caller must recompute."""
    w = np.ones((2, 241))
    a, b = np.array([1.0, 60.0]), np.array([0.0, 7.0])  # draw 1: logistic(60 (-6 - 7))
    step = float(NODES[1] - NODES[0])
    rows = np.empty(2)
    for weighted in (False, True):
        best = grid_weight_step(w.copy(), np.zeros(2), 0, 20, a, b, 1.0, NODES, step,
                                np.zeros(20), rows, weighted)  # fmt: skip
        assert best.size == 0
    # the same answer in log space is finite: the rebuild has something to work with
    assert np.isfinite(logsumexp(log_expit(60.0 * (NODES[:20] - 7.0))))
