"""A fused 2PL log-likelihood with its gradient, as one PyTensor Op.

The joint model's cost is one pass over the subject x item answer matrix per
gradient. Written as ordinary tensor algebra, PyTensor evaluates the forward and the
backward pass as separate broadcasts (``x``, ``softplus(x)``, ``sigmoid(x)``, three
reductions), ~60 ns per answer here. This Op computes the log-likelihood and all
three gradients in a single loop that shares one ``exp`` per answer, and is
registered for the numba backend (nutpie, PyMC's NUTS) and the JAX backend
(numpyro, nutpie with ``backend="jax"``). ``perform`` (numpy) is the reference the
tests compare both against.

    log L = sum_ij m_ij [y_ij x_ij - softplus(x_ij)],  x_ij = a_j (theta_i - b_j)
    d/dtheta_i = sum_j m_ij a_j r_ij,  d/da_j = sum_i m_ij (theta_i - b_j) r_ij,
    d/db_j = -sum_i m_ij a_j r_ij,  with r_ij = y_ij - logistic(x_ij)
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from scipy.special import expit, log_expit

__all__ = ["joint_loglik"]


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


def _register_numba() -> None:
    from pytensor.link.numba.dispatch import basic as numba_basic

    @numba_basic.register_funcify_default_op_cache_key(TwoPLJointLogLik)
    def _funcify(op, node=None, **kwargs):  # noqa: ARG001
        @numba_basic.numba_njit(fastmath=False)
        def loglik_and_grads(theta, a, b, y, mask):
            n, n_items = y.shape
            g_theta = np.zeros(n)
            g_a = np.zeros(n_items)
            g_b = np.zeros(n_items)
            total = 0.0
            for i in range(n):
                t = theta[i]
                acc = 0.0
                for j in range(n_items):
                    m = mask[i, j]
                    if m == 0.0:
                        continue
                    d = t - b[j]
                    x = a[j] * d
                    e = np.exp(-abs(x))
                    if x >= 0.0:
                        softplus = x + np.log1p(e)
                        p = 1.0 / (1.0 + e)
                    else:
                        softplus = np.log1p(e)
                        p = e / (1.0 + e)
                    yy = y[i, j]
                    total += m * (yy * x - softplus)
                    r = m * (yy - p)
                    acc += a[j] * r
                    g_a[j] += d * r
                    g_b[j] -= a[j] * r
                g_theta[i] = acc
            return np.asarray(total), g_theta, g_a, g_b

        return loglik_and_grads


def _register_jax() -> None:
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # pragma: no cover - jax not installed
        return

    @jax_funcify.register(TwoPLJointLogLik)
    def _funcify(op, **kwargs):  # noqa: ARG001
        import jax
        import jax.numpy as jnp

        def loglik(theta, a, b, y, mask):
            x = a[None, :] * (theta[:, None] - b[None, :])
            return jnp.sum(mask * (y * x - jax.nn.softplus(x)))

        grad = jax.value_and_grad(loglik, argnums=(0, 1, 2))

        def loglik_and_grads(theta, a, b, y, mask):
            value, (g_theta, g_a, g_b) = grad(theta, a, b, y, mask)
            return value, g_theta, g_a, g_b

        return loglik_and_grads


_register_numba()
_register_jax()
