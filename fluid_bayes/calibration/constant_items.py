"""Constant items integrated out of the joint likelihood, and drawn exactly afterwards.

An item that every calibration subject answered right (or every one wrong) has a
posterior bounded on one side by its population prior only: its likelihood
``prod_i logistic(s a_j (theta_i - b_j))`` (``s = +1`` all right, ``-1`` all wrong)
grows without limit as ``a_j -> inf`` once ``b_j`` is past every ability. Sampled as
parameters, thousands of such items (3,610 of MMLU-Redux's 5,700 for its 14 HELM
models) leave NUTS at trees of depth 9-10 and R-hat 2.8 (``benchmarks/README.md``).

Given the abilities and the item population, such an item is independent of every
other item, and all constant items that share the subjects who answered them, the
sign and the population (group) have the *same* marginal likelihood

    I_k = E_{z1, z2 ~ N(0, 1)} prod_{i in S_k} logistic(s a (theta_i - b)),
    b = loc_b + sigma_b z1,  a = exp(loc_la + sigma_la z2),

so the sampler sees one term ``count_k log I_k`` per such key instead of
``2 count_k`` parameters. After sampling, each constant item's ``(a_j, b_j)`` is drawn
from its exact conditional posterior given each posterior draw (rejection from the
population prior, accepted with probability ``prod_i logistic(...)``), so the bank
holds draws from the same joint posterior as if the items had been sampled.

``I_k`` is a nested quadrature. Over ``z2`` (log discrimination): the trapezoid rule,
every 0.5 on [-5, 5] (a Gaussian-weighted analytic integrand: geometric convergence).
Over ``z1`` (difficulty), per ``z2`` node: the product of logistics is a smoothed step
of width ``1 / (a sigma_b)`` near the abilities, and ~1 (or ~0) beyond. Outside the
window ``[(min theta - loc_b) / sigma_b - 20 / (a sigma_b), (max theta - loc_b) /
sigma_b + 20 / (a sigma_b)]`` every factor is within ``e^-20`` (2e-9) of 1, or below
it, so that tail is the normal probability ``Phi``; inside it, Gauss-Legendre with
``N_WINDOW`` = 64 nodes. Against scipy's adaptive quadrature (``tests/test_constant.py``)
the log of ``I_k`` is within ~1e-5 for population spreads of log discrimination up to
1.5. A fixed grid in ``z1``
(301 points) missed by 1e-4 where ``a sigma_b`` reaches ~100 at a weighted node (steep
discriminations, which constant items favour), at 4x the cost. The gradient
differentiates the integrand at the nodes; the window's ends move the tail and the
window's edge by the same amount, so they add nothing (up to ``e^-20``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from scipy.special import expit, log_expit, log_ndtr, logsumexp

from fluid_bayes.calibration.loglik import KERNEL_FLAGS, exp_nonpositive, log1p_unit
from fluid_bayes.data.report import constant_columns

__all__ = [
    "ConstantItems",
    "constant_items",
    "constant_loglik",
    "constant_potential",
    "draw_constant_items",
]

# quadrature: z2 (log discrimination) every 0.5 on [-5, 5], log weights including the
# normal density; z1 (difficulty) Gauss-Legendre on the window (see the module text)
_Z2 = np.linspace(-5.0, 5.0, 21)
_LW2 = np.log(0.5) - 0.5 * _Z2**2 - 0.5 * np.log(2 * np.pi)
N_WINDOW = 64
_GL_X, _GL_W = np.polynomial.legendre.leggauss(N_WINDOW)
_EDGE = 20.0  # logit beyond which a logistic factor is 1 (or 0) to e^-20 = 2e-9
_Z1_MAX = 9.0  # the window never leaves [-9, 9] (normal tail beyond: 1e-19)
_SQRT_HALF = np.sqrt(0.5)
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


@dataclass(frozen=True)
class ConstantItems:
    """Constant items of a response matrix, grouped into keys with one likelihood each.

    Attributes
    ----------
    items : numpy.ndarray
        Column positions of the constant items in the response matrix.
    key : numpy.ndarray
        Key of each constant item (index into the per-key arrays).
    sign : numpy.ndarray
        Per key: +1.0 (all answered right) or -1.0 (all wrong).
    mask : numpy.ndarray
        Per key, shape ``(K, n_subjects)``: 1.0 for the subjects who answered.
    group : numpy.ndarray or None
        Per key: the item group code (with partial pooling).
    counts : numpy.ndarray
        Per key: number of items.
    """

    items: np.ndarray
    key: np.ndarray
    sign: np.ndarray
    mask: np.ndarray
    group: np.ndarray | None
    counts: np.ndarray

    @property
    def n_items(self) -> int:
        """Number of constant items."""
        return len(self.items)


def constant_items(values: np.ndarray, codes: np.ndarray | None = None) -> ConstantItems:
    """Find the constant items of ``values`` (subjects x items, NaN missing) and key them.

    Parameters
    ----------
    values : numpy.ndarray
        Answers, shape ``(n_subjects, n_items)``.
    codes : numpy.ndarray, optional
        Item group codes (partial pooling); items of different groups never share a key.
    """
    answered = ~np.isnan(values)
    right, wrong = constant_columns(values)
    const = np.sort(np.concatenate([right, wrong]))
    sign = np.where(np.isin(const, right), 1, -1).astype(np.int8)
    group = np.zeros(len(const), np.int64) if codes is None else np.asarray(codes)[const]
    rows = np.column_stack([sign, group, answered[:, const].T.astype(np.int8)])
    uniq, key, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    return ConstantItems(
        items=const,
        key=key.reshape(-1),
        sign=uniq[:, 0].astype(np.float64),
        mask=uniq[:, 2:].astype(np.float64),
        group=None if codes is None else uniq[:, 1].astype(np.int64),
        counts=counts.astype(np.float64),
    )


# ------------------------------------------------------------------ reference (numpy)
def _window(theta, loc_b, sigma_b, a, sign, mask, xp=np, log_ndtr=log_ndtr, fixed=None):
    """Per key and z2 node: Gauss-Legendre nodes ``z1``, their log weights, log tail.

    ``xp`` and ``log_ndtr`` are numpy's and scipy's, or ``jax.numpy``'s and JAX's;
    ``fixed`` (JAX: ``stop_gradient``) holds the window's ends constant for
    differentiation, so the gradient is the integrand's at the nodes, as in the
    numba kernel and :func:`_constant_numpy` (see the module text).
    """
    big = xp.where(mask > 0, theta[None, :], -xp.inf).max(axis=1)  # (K,)
    small = xp.where(mask > 0, theta[None, :], xp.inf).min(axis=1)
    edge = _EDGE / (a * sigma_b)  # (K, n2)
    lo = xp.clip((small - loc_b)[:, None] / sigma_b - edge, -_Z1_MAX, _Z1_MAX)
    hi = xp.clip((big - loc_b)[:, None] / sigma_b + edge, -_Z1_MAX, _Z1_MAX)
    if fixed is not None:
        lo, hi = fixed(lo), fixed(hi)
    half, mid = xp.maximum(0.5 * (hi - lo), 1e-300), 0.5 * (hi + lo)
    z1 = mid[..., None] + half[..., None] * _GL_X  # (K, n2, N)
    lw1 = xp.log(half[..., None] * _GL_W) - 0.5 * z1**2 - _LOG_SQRT_2PI
    tail = xp.where(sign[:, None] > 0, log_ndtr(lo), log_ndtr(-hi))
    return z1, lw1, tail


def _constant_numpy(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts):
    """Value and gradient by broadcasting over every node (tests and ``perform``)."""
    a = np.exp(loc_la[:, None] + sigma_la * _Z2[None, :])  # (K, n2)
    z1, lw1, tail = _window(theta, loc_b, sigma_b, a, sign, mask)
    sa = (sign[:, None] * a)[..., None, None]
    x = sa * (theta - loc_b[:, None, None, None] - sigma_b * z1[..., None])  # (K, n2, N, n)
    m = mask[:, None, None, :]
    node = (log_expit(x) * m).sum(-1) + lw1 + _LW2[None, :, None]
    tail = tail + _LW2[None, :]
    log_i = np.logaddexp(logsumexp(node, axis=(1, 2)), logsumexp(tail, axis=1))
    w = np.exp(node - log_i[:, None, None]) * counts[:, None, None]  # window weights
    dx = w[..., None] * expit(-x) * m  # weight x d log logistic(x) / dx
    z2 = _Z2[None, :, None, None]
    return (
        float(counts @ log_i),
        (dx * sa).sum(axis=(0, 1, 2)),
        -(dx * sa).sum(axis=(1, 2, 3)),
        float(-(dx * sa * z1[..., None]).sum()),
        (dx * x).sum(axis=(1, 2, 3)),
        float((dx * x * z2).sum()),
    )


# ------------------------------------------------------------------ numba kernel


def _constant_kernel(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts, z2, lw2, gx, gw):
    n_keys, n = mask.shape
    n1, n2 = gx.size, z2.size
    g_theta = np.zeros(n)
    g_loc_b = np.zeros(n_keys)
    g_loc_la = np.zeros(n_keys)
    g_sigma_b = 0.0
    g_sigma_la = 0.0
    total = 0.0
    z1 = np.empty(n1)
    node = np.empty(n1)
    resid = np.empty((n, n1))
    w = np.empty(n1)
    top = np.empty(n2)  # per z2 node: the log scale its sums are relative to
    mass = np.empty(n2)  # per z2 node: tail + window, relative to exp(top)
    per_theta = np.empty((n2, n))  # per z2 node, weighted sums; combined at the end
    per_z1 = np.empty(n2)
    per_x = np.empty(n2)
    for k in range(n_keys):
        s = sign[k]
        small, big = np.inf, -np.inf
        for i in range(n):
            if mask[k, i] > 0:
                small, big = min(small, theta[i]), max(big, theta[i])
        for m in range(n2):
            a = np.exp(loc_la[k] + sigma_la * z2[m])
            edge = _EDGE / (a * sigma_b)
            lo = min(max((small - loc_b[k]) / sigma_b - edge, -_Z1_MAX), _Z1_MAX)
            hi = min(max((big - loc_b[k]) / sigma_b + edge, -_Z1_MAX), _Z1_MAX)
            half, mid = max(0.5 * (hi - lo), 1e-300), 0.5 * (hi + lo)
            if s > 0:
                tail = 0.5 * math.erfc(-lo * _SQRT_HALF)
            else:
                tail = 0.5 * math.erfc(hi * _SQRT_HALF)
            for q in range(n1):
                z1[q] = mid + half * gx[q]
                node[q] = np.log(half * gw[q]) - 0.5 * z1[q] * z1[q] - _LOG_SQRT_2PI
            for i in range(n):
                mi = mask[k, i]
                c = theta[i] - loc_b[k]
                for q in range(n1):
                    x = s * a * (c - sigma_b * z1[q])
                    e = exp_nonpositive(-abs(x))
                    node[q] += mi * (min(x, 0.0) - log1p_unit(e))
                    resid[i, q] = mi * (1.0 if x < 0.0 else e) / (1.0 + e)  # logistic(-x)
            peak = np.log(tail)
            for q in range(n1):
                peak = max(peak, node[q])
            tot = np.exp(np.log(tail) - peak)
            for q in range(n1):
                w[q] = exp_nonpositive(node[q] - peak)
                tot += w[q]
            top[m] = peak + lw2[m]
            mass[m] = tot
            sz, sx = 0.0, 0.0
            for i in range(n):
                c = theta[i] - loc_b[k]
                acc = 0.0
                for q in range(n1):
                    wr = w[q] * resid[i, q]
                    acc += wr
                    sz += wr * z1[q]
                    sx += wr * s * a * (c - sigma_b * z1[q])
                per_theta[m, i] = acc * s * a
            per_z1[m] = sz * s * a
            per_x[m] = sx
        peak = top[0]
        for m in range(n2):
            peak = max(peak, top[m])
        z = 0.0
        for m in range(n2):
            top[m] = np.exp(top[m] - peak)  # scale of z2 node m relative to the largest
            z += top[m] * mass[m]
        total += counts[k] * (peak + np.log(z))
        f = counts[k] / z
        for m in range(n2):
            fm = f * top[m]
            for i in range(n):
                g_theta[i] += fm * per_theta[m, i]
                g_loc_b[k] -= fm * per_theta[m, i]
            g_sigma_b -= fm * per_z1[m]
            g_loc_la[k] += fm * per_x[m]
            g_sigma_la += fm * per_x[m] * z2[m]
    return (
        np.asarray(total),
        g_theta,
        g_loc_b,
        np.asarray(g_sigma_b),
        g_loc_la,
        np.asarray(g_sigma_la),
    )


#: the kernel as plain numba (the tests call it directly)
constant_numba = numba.njit(_constant_kernel, **KERNEL_FLAGS)


def constant_numba_call(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts):
    """:func:`constant_numba` with this module's quadrature nodes."""
    return constant_numba(
        theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts, _Z2, _LW2, _GL_X, _GL_W
    )


class ConstantItemsLogLik(Op):
    """``(logp, d/dtheta, d/dloc_b, d/dsigma_b, d/dloc_la, d/dsigma_la)`` of the keys.

    Inputs ``theta (n,)``, ``loc_b (K,)``, ``sigma_b ()``, ``loc_la (K,)``,
    ``sigma_la ()``, ``sign (K,)``, ``mask (K, n)``, ``counts (K,)``, float64. Only
    ``logp`` is differentiable; its gradient is read from the other outputs.
    """

    __props__ = ()

    def make_node(self, *inputs):
        """Build the Apply node (float64 throughout)."""
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in inputs]
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dscalar(), pt.dvector()]
        outputs.append(pt.dscalar())
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        """Numpy reference implementation."""
        theta, loc_b, sigma_b, loc_la, sigma_la, *rest = inputs
        out = _constant_numpy(theta, loc_b, float(sigma_b), loc_la, float(sigma_la), *rest)
        for store, value in zip(output_storage, out, strict=True):
            store[0] = np.asarray(value, dtype=np.float64)

    def infer_shape(self, node, shapes):
        """Shapes of the outputs from the inputs'."""
        return [(), shapes[0], shapes[1], (), shapes[3], ()]

    def pullback(self, inputs, outputs, cotangents):
        """Gradient of ``logp`` only."""
        from pytensor.gradient import DisconnectedType, grad_not_implemented

        gz = cotangents[0]
        for g in cotangents[1:]:
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError("second derivatives of the constant-item likelihood")
        fixed = [grad_not_implemented(self, k, inputs[k]) for k in (5, 6, 7)]
        if isinstance(gz.type, DisconnectedType):
            return [pt.zeros_like(v) for v in inputs[:5]] + fixed
        return [gz * o for o in outputs[1:]] + fixed

    def connection_pattern(self, node):
        """Every output depends on every input."""
        return [[True] * 6] * 8


_op = ConstantItemsLogLik()


def constant_loglik(theta, loc_b, sigma_b, loc_la, sigma_la, const: ConstantItems):
    """Log marginal likelihood (a scalar tensor) of the constant items' keys.

    ``loc_b`` and ``loc_la`` are per key (the population or group means), in the
    sampler's frame like ``theta``, ``sigma_b`` and ``sigma_la``.
    """
    return _op(
        theta,
        loc_b,
        sigma_b,
        loc_la,
        sigma_la,
        pt.constant(const.sign),
        pt.constant(const.mask),
        pt.constant(const.counts),
    )[0]


def constant_potential(
    theta: Any, group_b: Any, sigma_b: Any, group_la: Any, sigma_la: Any, const: ConstantItems
) -> None:
    """The integrated constant items' log-likelihood; locations by group or shared."""
    n_keys = len(const.counts)
    if const.group is None:
        loc_b, loc_la = pt.ones(n_keys) * group_b, pt.ones(n_keys) * group_la
    else:
        loc_b, loc_la = group_b[const.group], group_la[const.group]
    pm.Potential("constant_loglik", constant_loglik(theta, loc_b, sigma_b, loc_la, sigma_la, const))


def _register_numba() -> None:
    import hashlib
    import inspect

    from pytensor.link.numba.dispatch import basic as numba_basic

    # PyTensor caches the compiled kernel on disk; the salt covers its source, flags
    # and the quadrature constants compiled into it, so a change recompiles
    source = (
        "".join(
            inspect.getsource(f)
            for f in (_constant_kernel, exp_nonpositive.py_func, log1p_unit.py_func)
        )
        + repr(sorted(KERNEL_FLAGS["fastmath"]))
        + repr((_EDGE, _Z1_MAX, _Z2.tolist(), _GL_X.tolist()))
    )
    salt = int(hashlib.sha256(source.encode()).hexdigest()[:12], 16)

    @numba_basic.register_funcify_default_op_cache_key(ConstantItemsLogLik)
    def _funcify(op, node=None, **kwargs):  # noqa: ARG001
        kernel = numba_basic.numba_njit(**KERNEL_FLAGS)(_constant_kernel)
        z2, lw2, gx, gw = _Z2, _LW2, _GL_X, _GL_W

        @numba_basic.numba_njit
        def call(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts):
            return kernel(
                theta, loc_b, sigma_b[()], loc_la, sigma_la[()], sign, mask, counts,
                z2, lw2, gx, gw,
            )  # fmt: skip

        return call, salt


def _register_jax() -> None:
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # pragma: no cover - jax not installed
        return

    @jax_funcify.register(ConstantItemsLogLik)
    def _funcify(op, **kwargs):  # noqa: ARG001
        import jax
        import jax.numpy as jnp
        from jax.scipy.special import log_ndtr as jlog_ndtr
        from jax.scipy.special import logsumexp as jlogsumexp

        z2, lw2 = jnp.asarray(_Z2), jnp.asarray(_LW2)

        def value(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts):
            a = jnp.exp(loc_la[:, None] + sigma_la * z2[None, :])
            z1, lw1, tail = _window(
                theta, loc_b, sigma_b, a, sign, mask, jnp, jlog_ndtr, jax.lax.stop_gradient
            )
            x = (sign[:, None] * a)[..., None, None] * (
                theta - loc_b[:, None, None, None] - sigma_b * z1[..., None]
            )
            node = (jax.nn.log_sigmoid(x) * mask[:, None, None, :]).sum(-1) + lw1
            per_z2 = jnp.logaddexp(jlogsumexp(node, axis=2), tail) + lw2
            return counts @ jlogsumexp(per_z2, axis=1)

        grad = jax.value_and_grad(value, argnums=(0, 1, 2, 3, 4))

        def loglik_and_grads(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts):
            v, g = grad(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts)
            return (v, *g)

        return loglik_and_grads


_register_numba()
_register_jax()


# ------------------------------------------------------------------ exact draws
def draw_constant_items(
    theta: np.ndarray,
    loc_b: np.ndarray,
    sigma_b: np.ndarray,
    loc_la: np.ndarray,
    sigma_la: np.ndarray,
    const: ConstantItems,
    rng: np.random.Generator,
    *,
    chunk: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw every constant item's ``(a, b)`` from its conditional posterior, per draw.

    Rejection sampling: propose from the item population ``b ~ N(loc_b, sigma_b)``,
    ``log a ~ N(loc_la, sigma_la)`` and accept with probability
    ``prod_i logistic(s a (theta_i - b))`` (at most 1), which is exact.

    Parameters
    ----------
    theta : numpy.ndarray
        Abilities per posterior draw, shape ``(S, n_subjects)``.
    loc_b, loc_la : numpy.ndarray
        Population (group) means per draw and key, shape ``(S, K)``.
    sigma_b, sigma_la : numpy.ndarray
        Population spreads per draw, shape ``(S,)``.
    const : ConstantItems
    rng : numpy.random.Generator

    Returns
    -------
    a, b : numpy.ndarray
        Shape ``(S, n_constant_items)``, in the order of ``const.items``.
    """
    n_draws = theta.shape[0]
    a_out = np.full((n_draws, const.n_items), np.nan)
    b_out = np.full((n_draws, const.n_items), np.nan)
    for k in range(len(const.counts)):
        cols = np.flatnonzero(const.key == k)
        subj = np.flatnonzero(const.mask[k] > 0)
        s = const.sign[k]
        # pending (draw, column) pairs; each round proposes `per` candidates for each
        pend_d, pend_c = np.divmod(np.arange(n_draws * len(cols)), len(cols))
        rate = 0.5
        for _ in range(100_000):
            if not len(pend_d):
                break
            per = int(min(64, np.ceil(2.0 / max(rate, 1e-3))))
            accepted = 0
            keep = np.ones(len(pend_d), bool)
            for start in range(0, len(pend_d), max(1, chunk // per)):
                sl = slice(start, start + max(1, chunk // per))
                dd, cc = pend_d[sl], pend_c[sl]
                z = rng.standard_normal((len(dd), per, 2))
                b = loc_b[dd, k][:, None] + sigma_b[dd][:, None] * z[..., 0]
                a = np.exp(loc_la[dd, k][:, None] + sigma_la[dd][:, None] * z[..., 1])
                x = s * a[..., None] * (theta[dd][:, None, subj] - b[..., None])
                ok = np.log(rng.random(b.shape)) < log_expit(x).sum(-1)
                hit = ok.any(axis=1)
                first = ok.argmax(axis=1)[hit]
                rows = np.flatnonzero(hit)
                a_out[dd[hit], cols[cc[hit]]] = a[rows, first]
                b_out[dd[hit], cols[cc[hit]]] = b[rows, first]
                keep[np.arange(sl.start, sl.start + len(dd))[hit]] = False
                accepted += int(ok.sum())
            rate = max(accepted / (len(pend_d) * per), 1e-6)
            pend_d, pend_c = pend_d[keep], pend_c[keep]
        else:  # pragma: no cover - acceptance below 1e-5 for 100,000 rounds
            raise RuntimeError(f"constant-item draws did not finish for key {k}")
    return a_out, b_out
