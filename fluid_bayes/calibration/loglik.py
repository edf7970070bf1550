"""A fused 2PL log-likelihood with its gradient, as one PyTensor Op.

The joint model's cost is one pass over the subject x item answer matrix per
gradient. Written as ordinary tensor algebra, PyTensor evaluates the forward and the
backward pass as separate broadcasts (``x``, ``softplus(x)``, ``sigmoid(x)``, three
reductions), ~60 ns per answer here. This Op computes the log-likelihood and all
three gradients in a single loop that shares one ``exp`` and one ``log1p`` per
answer, and is registered for the numba backend (nutpie, PyMC's NUTS), where LLVM
vectorizes the loop (4-5 ns per answer), and the JAX backend (numpyro, nutpie with
``backend="jax"``). ``perform`` (numpy) is a third implementation;
``tests/test_loglik.py`` checks all three against scipy's logistic functions.

    log L = sum_ij m_ij [y_ij x_ij - softplus(x_ij)],  x_ij = a_j (theta_i - b_j)
    d/dtheta_i = sum_j m_ij a_j r_ij,  d/da_j = sum_i m_ij (theta_i - b_j) r_ij,
    d/db_j = -sum_i m_ij a_j r_ij,  with r_ij = y_ij - logistic(x_ij)
"""

from __future__ import annotations

import hashlib
import inspect

import numba
import numpy as np
import pytensor.tensor as pt
from numba import types
from numba.extending import intrinsic
from pytensor.gradient import grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from scipy.special import expit, log_expit

__all__ = [
    "KERNEL_FLAGS",
    "exp_nonpositive",
    "joint_loglik",
    "log1p_unit",
    "loglik_and_grads_numba",
]


def _loglik_and_grads_numpy(theta, a, b, y, mask):
    x = a[None, :] * (theta[:, None] - b[None, :])
    ll = np.where(y > 0.5, log_expit(x), log_expit(-x)) * mask
    r = (y - expit(x)) * mask
    return (
        np.asarray(ll.sum()),
        r @ a,
        ((theta[:, None] - b[None, :]) * r).sum(axis=0),
        -a * r.sum(axis=0),
    )


class TwoPLJointLogLik(Op):
    """Outputs ``(logp, dlogp/dtheta, dlogp/da, dlogp/db)`` for dense answers.

    Inputs are ``theta (n,)``, ``a (J,)``, ``b (J,)``, ``y (n, J)`` and ``mask (n, J)``
    (1.0 where answered), all float64. Only the first output is differentiable; its
    gradient is read from the other three outputs of the same node, so a compiled
    log-density-and-gradient function runs the loop once.
    """

    __props__ = ()

    def make_node(self, theta, a, b, y, mask):
        """Build the Apply node (float64 throughout)."""
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in (theta, a, b, y, mask)]
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        """Numpy reference implementation."""
        for store, value in zip(output_storage, _loglik_and_grads_numpy(*inputs), strict=True):
            store[0] = np.asarray(value, dtype=np.float64)

    def infer_shape(self, node, shapes):
        """Shapes of the outputs from the inputs'."""
        return [(), shapes[0], shapes[1], shapes[1]]

    def pullback(self, inputs, outputs, cotangents):
        """Gradient of ``logp`` only (the gradient outputs are not differentiable)."""
        from pytensor.gradient import DisconnectedType

        gz = cotangents[0]
        for g in cotangents[1:]:
            if not isinstance(g.type, DisconnectedType):
                raise NotImplementedError("second derivatives of the 2PL log-likelihood")
        if isinstance(gz.type, DisconnectedType):
            return [pt.zeros_like(v) for v in inputs[:3]] + [
                grad_not_implemented(self, 3, inputs[3]),
                grad_not_implemented(self, 4, inputs[4]),
            ]
        return [
            gz * outputs[1],
            gz * outputs[2],
            gz * outputs[3],
            grad_not_implemented(self, 3, inputs[3]),
            grad_not_implemented(self, 4, inputs[4]),
        ]

    def connection_pattern(self, node):
        """Every output depends on theta, a, b, y and mask."""
        return [[True, True, True, True]] * 5


_joint_op = TwoPLJointLogLik()


def joint_loglik(theta, a, b, y: np.ndarray, mask: np.ndarray | None = None):
    """Log-likelihood (a scalar tensor) of dense 0/1 answers under the 2PL.

    Parameters
    ----------
    theta : tensor, shape (n,)
    a, b : tensor, shape (J,)
    y : numpy.ndarray, shape (n, J)
        Answers with missing cells set to 0.
    mask : numpy.ndarray, optional
        1.0 where answered (default: all answered).
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    mask = np.ones_like(y) if mask is None else np.ascontiguousarray(mask, dtype=np.float64)
    return _joint_op(theta, a, b, pt.constant(y), pt.constant(mask))[0]


# ------------------------------------------------------------------ numba kernel
# numba calls libm's scalar ``exp`` and ``log1p`` once per answer and LLVM cannot
# vectorize such a loop (19-33 ns per answer here). The two functions below are
# written so that LLVM vectorizes them: only the arithmetic the loop needs, no
# branches, no calls. Each is accurate to 1-2 ulp over its whole domain
# (``tests/test_loglik.py``); the kernel then costs 4-5 ns per answer. The
# polynomials are written out term by term on purpose: a Horner loop over a
# coefficient tuple (with or without ``literal_unroll``) is not vectorized, and the
# kernel took 30-38 ns per answer with it.

_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of log(2): k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00


@intrinsic
def _float_from_bits(typingctx, bits):  # noqa: ARG001
    """Reinterpret an int64 as the float64 with the same bits."""

    def codegen(context, builder, signature, args):  # noqa: ARG001
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@numba.njit(error_model="numpy", fastmath={"contract"})
def exp_nonpositive(t: float) -> float:
    """``exp(t)`` for ``t <= 0`` (below -708 it returns ``exp(-708)``, < 3.3e-308).

    Cody-Waite reduction ``t = k log 2 + r`` with ``|r| <= log(2) / 2``, the Taylor
    polynomial of ``exp(r)`` to degree 13 (remainder below 4e-18 relative) and
    ``2^k`` built from its exponent bits.
    """
    t = max(t, -708.0)
    k = np.floor(t * _INV_LN2 + 0.5)
    r = (t - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _float_from_bits((np.int64(k) + 1023) << 52)


@numba.njit(error_model="numpy", fastmath={"contract"})
def log1p_unit(e: float) -> float:
    """``log(1 + e)`` for ``0 <= e <= 1``.

    ``log(1 + e) = 2 atanh(s)`` with ``s = e / (2 + e) <= 1/3``, summed to ``s^33``
    (remainder below 2e-17 relative). ``s`` is formed from ``e`` itself, so small
    ``e`` keep their relative precision (no ``1 + e`` rounding).
    """
    s = e / (2.0 + e)
    z = s * s
    q = 1.0 / 33.0
    q = q * z + 1.0 / 31.0
    q = q * z + 1.0 / 29.0
    q = q * z + 1.0 / 27.0
    q = q * z + 1.0 / 25.0
    q = q * z + 1.0 / 23.0
    q = q * z + 1.0 / 21.0
    q = q * z + 1.0 / 19.0
    q = q * z + 1.0 / 17.0
    q = q * z + 1.0 / 15.0
    q = q * z + 1.0 / 13.0
    q = q * z + 1.0 / 11.0
    q = q * z + 1.0 / 9.0
    q = q * z + 1.0 / 7.0
    q = q * z + 1.0 / 5.0
    q = q * z + 1.0 / 3.0
    q = q * z + 1.0
    return 2.0 * s * q


def _loglik_and_grads_kernel(theta, a, b, y, mask):
    n, n_items = y.shape
    g_theta = np.zeros(n)
    g_a = np.zeros(n_items)
    sum_r = np.zeros(n_items)
    total = 0.0
    for i in range(n):
        t = theta[i]
        acc = 0.0
        row = 0.0
        for j in range(n_items):
            m = mask[i, j]
            d = t - b[j]
            x = a[j] * d
            e = exp_nonpositive(-abs(x))  # exp(-|x|)
            softplus = max(x, 0.0) + log1p_unit(e)
            p = (1.0 if x >= 0.0 else e) / (1.0 + e)  # logistic(x)
            yy = y[i, j]
            row += m * (yy * x - softplus)
            r = m * (yy - p)
            acc += a[j] * r
            g_a[j] += d * r
            sum_r[j] += r
        g_theta[i] = acc
        total += row
    return np.asarray(total), g_theta, g_a, -a * sum_r


#: numba flags of the kernel: ``reassoc`` lets LLVM vectorize the sums (their order
#: of addition changes, not their terms), ``contract`` lets it fuse a multiply and
#: an add into one FMA (one rounding instead of two; 1.7x faster here), and
#: ``error_model="numpy"`` drops the ZeroDivisionError checks that block
#: vectorization.
KERNEL_FLAGS = {"fastmath": {"reassoc", "contract"}, "error_model": "numpy"}

#: the kernel as plain numba (the tests call it directly)
loglik_and_grads_numba = numba.njit(_loglik_and_grads_kernel, **KERNEL_FLAGS)


def _register_numba() -> None:
    from pytensor.link.numba.dispatch import basic as numba_basic

    # PyTensor caches compiled kernels on disk under a key made of the Op's type and
    # props; the hash of the kernel's source salts it, so an edited kernel is
    # recompiled instead of a stale one being loaded.
    source = repr(sorted(KERNEL_FLAGS["fastmath"])) + "".join(
        inspect.getsource(f)
        for f in (_loglik_and_grads_kernel, exp_nonpositive.py_func, log1p_unit.py_func)
    )
    salt = int(hashlib.sha256(source.encode()).hexdigest()[:12], 16)

    @numba_basic.register_funcify_default_op_cache_key(TwoPLJointLogLik)
    def _funcify(op, node=None, **kwargs):  # noqa: ARG001
        kernel = numba_basic.numba_njit(**KERNEL_FLAGS)(_loglik_and_grads_kernel)
        return kernel, salt


def _register_jax() -> None:
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # pragma: no cover - jax not installed
        return

    @jax_funcify.register(TwoPLJointLogLik)
    def _funcify(op, **kwargs):  # noqa: ARG001
        import jax.numpy as jnp

        def loglik_and_grads(theta, a, b, y, mask):
            # the gradient written out (one exp and one log1p per answer): XLA runs it
            # 1.5-2x faster than the reverse-mode derivative of the log-likelihood
            d = theta[:, None] - b[None, :]
            x = a[None, :] * d
            e = jnp.exp(-jnp.abs(x))
            softplus = jnp.maximum(x, 0.0) + jnp.log1p(e)
            p = jnp.where(x >= 0.0, 1.0, e) / (1.0 + e)
            r = mask * (y - p)
            value = jnp.sum(mask * (y * x - softplus))
            return value, r @ a, jnp.sum(d * r, axis=0), -a * jnp.sum(r, axis=0)

        return loglik_and_grads


_register_numba()
_register_jax()
