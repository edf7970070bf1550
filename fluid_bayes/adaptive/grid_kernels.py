"""Compiled (numba) kernels of the Bayesian session's grid posterior.

:class:`fluid_bayes.adaptive.ability.GridState` keeps the posterior weight of every
(item-parameter draw, ability node) pair, ``w`` of shape ``(S, G)``, each draw's row
scaled to a maximum of 1 with its log scale kept aside. An answer multiplies one
likelihood per cell into the rows' window ``[lo, hi)``; this is the whole cost of a
Bayesian session (4,000 draws x 241 nodes is a million cells an answer), so the update
is written for the vector units:

- the likelihood ``logistic(z) = 1 / (1 + t)`` with ``t = exp(-z)`` and
  ``z = +-a_s (node - b_s)``: with equally spaced nodes ``t`` is a block start times a
  per-node factor ``exp(-a_s h)^k`` (the powers by multiplication) in blocks of
  :data:`BLOCK` nodes, the start computed by ``exp`` every :data:`CARRY_BLOCKS` blocks
  and carried by ``exp(-a_s h)^BLOCK`` between (a relative error of a few ulps), so a
  row costs ``2 + G / (BLOCK * CARRY_BLOCKS)`` calls of ``exp`` and the rest is a loop
  of multiplies and divides that LLVM vectorizes. An ``exp`` that overflows gives
  ``t = inf`` and a likelihood of 0, which is right to far below the weights kept
  (``< 1e-300``; a row that would lose all its weight this way is recomputed in log
  space by the caller);
- each row is processed while it is in cache: the likelihood pass (with the row's
  maximum), then the rescaling pass with the row's sum, and the row is added to the
  posterior over the nodes (either integration), so a step reads and writes the
  weights once and neither the ability summary nor the normalized weights of a few
  draws need a further pass over all of them.

Fractional answers (the tempered likelihoods of a round's fantasy updates) take a
scalar path with one ``exp`` per cell.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["BLOCK", "CARRY_BLOCKS", "exp_along_grid", "grid_weight_step", "grid_window_weights"]

#: Nodes per block of the likelihood of an equally spaced grid (one start per block).
BLOCK = 16
#: Blocks per exact ``exp``: the starts of the blocks between are carried by one
#: multiplication (recomputed exactly wherever they leave ``(1e-280, 1e280)``)
CARRY_BLOCKS = 4
_LOW, _HIGH = 1e-280, 1e280
# the loops below hold no NaN (weights are finite and >= 0, t >= 0 or inf): the flags
# let LLVM vectorize the row maximum; infinities keep their meaning
_VECTOR = {"nnan", "nsz"}
# a row's sum may be reassociated (it differs from the sequential sum in the last bits)
_SUM = {"nnan", "nsz", "reassoc"}
# weights below this are set to 0 (exp(-690) below the draw's maximum)
_TINY = 1e-300


@njit(cache=True, fastmath=_VECTOR, error_model="numpy")
def exp_along_grid(t, offs, nodes, ab, bs, step):
    """``t[k] = exp(-ab (nodes[k] - bs))`` for every node (``t`` at least as long).

    ``offs`` is scratch of :data:`BLOCK` floats; ``step`` the nodes' spacing if equal,
    else 0 (then, as for a very steep ``ab``, one ``exp`` per node). On equally spaced
    nodes, blocks of :data:`BLOCK` nodes: a block start times the powers of
    ``exp(-ab step)`` (see the module docstring). An overflow gives ``inf``.
    """
    n_w = nodes.size
    if step == 0.0 or abs(ab * step) > 30.0:  # unequal nodes or a very steep draw
        for k in range(n_w):
            t[k] = math.exp(-ab * (nodes[k] - bs))
        return
    r = math.exp(-ab * step)
    offs[0] = 1.0
    for k in range(1, BLOCK):
        offs[k] = offs[k - 1] * r
    carry = offs[BLOCK - 1] * r  # from one block's start to the next
    full = n_w // BLOCK * BLOCK
    base = 0.0
    for m in range(0, full, BLOCK):  # whole blocks: a fixed trip count, vectorized
        if m % (BLOCK * CARRY_BLOCKS) == 0 or not _LOW < base < _HIGH:
            base = math.exp(-ab * (nodes[m] - bs))
        for k in range(BLOCK):
            t[m + k] = base * offs[k]
        base *= carry
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
def _rescale_row(row, inv, best):
    """Multiply ``row`` by ``inv`` and update ``best``; returns the row's new sum."""
    for k in range(row.size):
        v = row[k] * inv
        row[k] = v
        best[k] = max(best[k], v)
    return _row_sum(row)


@njit(cache=True, fastmath=_VECTOR, error_model="numpy")
def _add_row(marginal, row, f):
    """``marginal += f * row``."""
    for k in range(row.size):
        marginal[k] += row[k] * f


@njit(cache=True)
def grid_weight_step(w, log_scale, lo, hi, a, b, y, nodes, step, marginal, rows, weighted):
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
        ``(hi - lo,)`` zeros to receive the posterior over the window nodes, or an
        empty array to skip it.
    rows : numpy.ndarray
        ``(S,)``, receives each row's window sum after the step.
    weighted : bool
        The marginal of the ``weighted`` integration (the draws weighted by their
        likelihood: row ``s`` counts ``exp(log_scale[s])`` times, one normalization over
        all cells); else the ``mixture`` (each draw's row normalized to ``1 / S``).
        Either equals the node sums of :func:`grid_window_weights`.

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
    # the scales only fall (a row's new maximum is at most 1): relative to the largest
    # before the step, every row's weight is at most 1
    ref = log_scale.max() if n_s else 0.0
    total = 0.0
    for s in range(n_s):
        row = w[s, lo:hi]
        if frac:
            top = _tempered_row(row, a[s], b[s], y, window)
        else:
            exp_along_grid(t, offs, window, sign * a[s], b[s], step)
            top = _likelihood_row(row, t)
        if not top > 0.0:
            return np.zeros(0)
        log_scale[s] += math.log(top)
        rows[s] = _rescale_row(row, 1.0 / top, best)
        if marginal.size == n_w:
            f = math.exp(log_scale[s] - ref) if weighted else 1.0 / (rows[s] * n_s)
            _add_row(marginal, row, f)
            total += f * rows[s]
    if weighted and marginal.size == n_w:
        if not total > 0.0:  # every draw fell over 700 nats in one answer
            return np.zeros(0)
        inv = 1.0 / total
        for k in range(n_w):
            marginal[k] *= inv
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
