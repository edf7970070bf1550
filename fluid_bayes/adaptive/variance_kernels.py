"""Compiled (numba) kernel of the ``epv`` selection rule: expected posterior variance.

For an item ``j`` and the ability posterior as weights ``w[s, g]`` over the joint
(draw, node) cells (:class:`~fluid_bayes.adaptive.ability.GridState`), a right answer
has predictive probability ``P = sum_sg w_sg p_jsg`` (``p_jsg = logistic(a_sj (theta_g
- b_sj))``) and the posterior after the answer ``y`` has weights ``w_sg p_jsg / P``
(``y = 1``) or ``w_sg (1 - p_jsg) / (1 - P)`` (``y = 0``). The expected posterior
variance of ability is ``P Var_1 + (1 - P) Var_0``; by the law of total variance it is
``Var - R`` with the *expected reduction*

    R_j = Var(E[theta | y_j]) = C_j^2 / (P_j (1 - P_j)),   C_j = sum_sg w_sg (theta_g - mu) p_jsg,

so :func:`variance_reduction` needs one pass over the cells per item, accumulating
``P`` and ``C``. ``z = exp(-x)`` comes from the grid update's
:func:`~fluid_bayes.adaptive.grid_kernels.exp_along_grid` (on equally spaced nodes a
block start times the powers of a constant factor), ``p = 1 / (1 + z)`` (0 where ``z``
overflows), and the sums over the cells run in the vector units (:func:`_moments`). The kernel goes
through the posterior a draw's row at a time, every candidate reading the row while it
is in cache.

An item whose draws disagree (an uncertain ``a`` or ``b``) has a flatter ``p`` over
the cells that matter, hence a smaller covariance with ability: its answer is worth
correspondingly less.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fluid_bayes.adaptive.grid_kernels import BLOCK, exp_along_grid

__all__ = ["draw_ranges", "variance_reduction"]


# the sums may be reassociated (the order the vector units add them); no NaN in them
_SUM = {"nnan", "nsz", "reassoc"}


@njit(cache=True, fastmath=_SUM, error_model="numpy")
def _moments(row, t, centred, lo, n_g):
    """``sum_i row[lo+i] / (1 + t[i])`` and the same weighted by ``centred[lo+i]``."""
    p1 = 0.0
    c1 = 0.0
    for i in range(n_g):
        wp = row[lo + i] / (1.0 + t[i])
        p1 += wp
        c1 += wp * centred[lo + i]
    return p1, c1


@njit(cache=True)
def draw_ranges(w, rel):
    """Per draw, the node range ``[lo_s, hi_s)`` whose weights exceed ``rel * max(w)``.

    ``w`` (S, W) are joint weights; a draw with no such cell gets ``lo_s = hi_s = 0``.
    Returns two int64 (S,) arrays.
    """
    n_s, n_w = w.shape
    top = 0.0
    for s in range(n_s):
        for g in range(n_w):
            top = max(top, w[s, g])
    cut = rel * top
    lo = np.zeros(n_s, dtype=np.int64)
    hi = np.zeros(n_s, dtype=np.int64)
    for s in range(n_s):
        first = -1
        last = -1
        for g in range(n_w):
            if w[s, g] > cut:
                if first < 0:
                    first = g
                last = g
        if first >= 0:
            lo[s] = first
            hi[s] = last + 1
    return lo, hi


@njit(cache=True)
def variance_reduction(w, nodes, a, b, draws, items, lo, hi, step):
    """Expected reduction of the ability posterior's variance by each item's answer.

    Parameters
    ----------
    w : float64 (S', W)
        Joint posterior weights of the draws used (rows) and the window nodes
        (columns); normalized by the kernel (their total need not be 1).
    nodes : float64 (W,)
        The window's ability nodes.
    a, b : float64 (S, N)
        Item draws of the bank; row ``draws[r]`` belongs to row ``r`` of ``w``.
    draws : int64 (S',)
        Bank draw of each row of ``w``.
    items : int64 (K,)
        Candidate items (-1: none; scored ``-inf``).
    lo, hi : int64 (S',)
        Per row, the node range that carries weight (:func:`draw_ranges`).
    step : float
        The node spacing when equal (``exp`` carried from node to node), else 0.

    Returns
    -------
    float64 (K,)
        ``R_j = C_j^2 / (P_j (1 - P_j))`` (see the module docstring), 0 where the
        predictive probability is 0 or 1.
    """
    n_r = w.shape[0]
    total = 0.0
    m1 = 0.0
    for r in range(n_r):
        for g in range(lo[r], hi[r]):
            total += w[r, g]
            m1 += w[r, g] * nodes[g]
    mu = m1 / total
    centred = nodes - mu
    t = np.empty(nodes.size)
    offs = np.empty(BLOCK)
    n_k = items.size
    p1 = np.zeros(n_k)
    c1 = np.zeros(n_k)
    for r in range(n_r):  # a row's weights stay in cache while every candidate reads them
        n_g = hi[r] - lo[r]
        if n_g <= 0:
            continue
        s = draws[r]
        row = w[r]
        a_s = a[s]
        b_s = b[s]
        for k in range(n_k):
            j = items[k]
            if j < 0:
                continue
            exp_along_grid(t, offs, nodes[lo[r] : hi[r]], a_s[j], b_s[j], step)
            dp, dc = _moments(row, t, centred, lo[r], n_g)
            p1[k] += dp
            c1[k] += dc
    out = np.empty(n_k)
    for k in range(n_k):
        if items[k] < 0:
            out[k] = -np.inf
            continue
        pk = p1[k] / total
        ck = c1[k] / total
        den = pk * (1.0 - pk)
        out[k] = ck * ck / den if den > 0.0 else 0.0
    return out
