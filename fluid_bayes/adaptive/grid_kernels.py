"""Compiled (numba) kernels of the Bayesian session's grid posterior.

:class:`fluid_bayes.adaptive.ability.GridState` keeps the posterior weight of every
(item-parameter draw, ability node) pair, ``w`` of shape ``(S, G)``, each draw's row
scaled to a maximum of 1 with its log scale kept aside. An answer multiplies one
likelihood per cell into the rows' window ``[lo, hi)``; this is the whole cost of a
Bayesian session (4,000 draws x 241 nodes is a million cells an answer), so the update
is written for the vector units:

- the likelihood ``logistic(z) = 1 / (1 + t)`` with ``t = exp(-z)`` and
  ``z = +-a_s (node - b_s)``: with equally spaced nodes ``t`` is one ``exp`` per block
  of :data:`BLOCK` nodes times a per-node factor ``exp(-a_s h)^k`` (the powers by
  multiplication), so a row costs ``1 + G / BLOCK`` calls of ``exp`` and the rest is a
  loop of multiplies and divides that LLVM vectorizes. An ``exp`` that overflows gives
  ``t = inf`` and a likelihood of 0, which is right to far below the weights kept
  (``< 1e-300``; a row that would lose all its weight this way is recomputed in log
  space by the caller);
- each row is processed while it is in cache: the likelihood pass (with the row's
  maximum), then the rescaling pass, which also adds the row to the mixture marginal
  over the nodes, so a step reads and writes the weights once and the ability summary
  needs no further pass over them.

Fractional answers (the tempered likelihoods of a round's fantasy updates) take a
scalar path with one ``exp`` per cell.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["BLOCK", "grid_weight_step", "grid_window_weights"]

#: Nodes per exact ``exp`` in the likelihood of an equally spaced grid.
BLOCK = 16
# the loops below hold no NaN (weights are finite and >= 0, t >= 0 or inf): the flags
# let LLVM vectorize the row maximum; infinities keep their meaning
_VECTOR = {"nnan", "nsz"}
# a row's sum may be reassociated (it differs from the sequential sum in the last bits)
_SUM = {"nnan", "nsz", "reassoc"}
# weights below this are set to 0 (exp(-690) below the draw's maximum)
_TINY = 1e-300


@njit(cache=True, fastmath=_VECTOR, error_model="numpy")
def _exp_neg(t, offs, nodes, ab, bs, step):
    """``t[k] = exp(-ab (nodes[k] - bs))`` for every node."""
    n_w = nodes.size
    if step == 0.0 or abs(ab * step) > 30.0:  # unequal nodes or a very steep draw
        for k in range(n_w):
            t[k] = math.exp(-ab * (nodes[k] - bs))
        return
    r = math.exp(-ab * step)
    offs[0] = 1.0
    for k in range(1, BLOCK):
        offs[k] = offs[k - 1] * r
    full = n_w // BLOCK * BLOCK
    for m in range(0, full, BLOCK):  # whole blocks: a fixed trip count, vectorized
        base = math.exp(-ab * (nodes[m] - bs))
        for k in range(BLOCK):
            t[m + k] = base * offs[k]
    if full < n_w:
        base = math.exp(-ab * (nodes[full] - bs))
        for k in range(n_w - full):
            t[full + k] = base * offs[k]


@njit(cache=True, fastmath=_VECTOR, error_model="numpy")
def _likelihood_row(row, t):
    """``row[k] /= 1 + t[k]`` (tiny results to 0); returns the row's maximum.

    ``t`` is overwritten with the likelihoods ``1 / (1 + t)``.
    """
    for k in range(t.size):
        t[k] = 1.0 / (1.0 + t[k])
    top = 0.0
    for k in range(row.size):
        v = row[k] * t[k]
        v = v if v >= _TINY else 0.0
        row[k] = v
        top = v if v > top else top
    return top


@njit(cache=True)
def _tempered_row(row, ab, bs, y, nodes):
    """``row[k] *= logistic(x)^y logistic(-x)^(1 - y)``; returns the row's maximum.

    ``x = ab (nodes[k] - bs)``; one ``exp`` per cell (a fractional answer ``y``).
    """
    top = 0.0
    for k in range(row.size):
        x = ab * (nodes[k] - bs)
        e = math.exp(-abs(x))
        v = row[k] * (math.exp(y * min(x, 0.0) - (1.0 - y) * max(x, 0.0)) / (1.0 + e))
        v = v if v >= _TINY else 0.0
        row[k] = v
        top = max(top, v)
    return top


@njit(cache=True, fastmath=_SUM, error_model="numpy")
def _row_sum(row):
    """``sum(row)``, in the order the vector units add it."""
    total = 0.0
    for k in range(row.size):
        total += row[k]
    return total


@njit(cache=True, fastmath=_VECTOR, error_model="numpy")
def _rescale_row(row, inv, best, marginal, n_s):
    """Multiply ``row`` by ``inv``; update ``best`` and (if sized) the marginal."""
    for k in range(row.size):
        v = row[k] * inv
        row[k] = v
        best[k] = max(best[k], v)
    if marginal.size == row.size:
        f = 1.0 / (_row_sum(row) * n_s)
        for k in range(row.size):
            marginal[k] += row[k] * f


@njit(cache=True)
def grid_weight_step(w, log_scale, lo, hi, a, b, y, nodes, step, marginal):
    """Multiply one answer's likelihood into window weights ``w[:, lo:hi]``, in place.

    Parameters
    ----------
    w : numpy.ndarray
        ``(S, G)``: ``exp(loglik + log_prior - log_scale[s])`` per (draw, node), each
        row scaled so that its window maximum is 1.
    log_scale : numpy.ndarray
        ``(S,)``, the rows' log scales (updated).
    lo, hi : int
        The window of nodes to update.
    a, b : numpy.ndarray
        ``(S,)``, the item's draws.
    y : float
        The answer: 0/1, or a fractional ``y`` in (0, 1) for the tempered likelihood
        ``logistic(x)^y logistic(-x)^(1 - y)``, ``x = a (node - b)`` (a fantasy answer,
        :mod:`fluid_bayes.adaptive.rounds`).
    nodes : numpy.ndarray
        ``(G,)``, the ability grid.
    step : float
        The grid spacing if the nodes are equally spaced, else 0.
    marginal : numpy.ndarray
        ``(hi - lo,)`` zeros to receive the mixture posterior over the window nodes
        (each draw's row normalized to ``1 / S``, summed over draws), or an empty array
        to skip it.

    Returns
    -------
    numpy.ndarray
        Per window node, ``max_s w[s, g]``: ``exp`` of how far the node lies below the
        nearest draw's maximum. Empty if some draw's window likelihood underflowed
        (the caller recomputes in log space).
    """
    n_s = w.shape[0]
    n_w = hi - lo
    frac = y != 0.0 and y != 1.0
    sign = -1.0 if y == 0.0 else 1.0
    best = np.zeros(n_w)
    t = np.empty(n_w)
    offs = np.empty(BLOCK)
    window = nodes[lo:hi]
    for s in range(n_s):
        row = w[s, lo:hi]
        if frac:
            top = _tempered_row(row, a[s], b[s], y, window)
        else:
            _exp_neg(t, offs, window, sign * a[s], b[s], step)
            top = _likelihood_row(row, t)
        if not top > 0.0:
            return np.zeros(0)
        log_scale[s] += math.log(top)
        _rescale_row(row, 1.0 / top, best, marginal, n_s)
    return best


@njit(cache=True)
def grid_window_weights(w, log_scale, lo, hi, mixture):
    """Normalized posterior weights over (draw, window node), and their node sums.

    From the scaled weights of :func:`grid_weight_step`. ``mixture``: each draw's
    ability posterior normalized to ``1 / S``; otherwise the draws weighted by their
    likelihood (``exp(log_scale)`` times the row sums), one normalization over all
    cells, as :func:`fluid_bayes.adaptive.ability.joint_weights`.
    """
    n_s = w.shape[0]
    n_w = hi - lo
    out = np.empty((n_s, n_w))
    rows = np.zeros(n_s)
    for s in range(n_s):
        for k in range(n_w):
            rows[s] += w[s, lo + k]
    if mixture:
        factor = 1.0 / (rows * n_s)
    else:
        rel = np.exp(log_scale - log_scale.max())
        factor = rel / np.sum(rel * rows)
    marginal = np.zeros(n_w)
    for s in range(n_s):
        f = factor[s]
        for k in range(n_w):
            v = w[s, lo + k] * f
            out[s, k] = v
            marginal[k] += v
    return out, marginal
