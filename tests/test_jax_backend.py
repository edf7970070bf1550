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


@pytest.mark.parametrize("shape", [(40, 12), (12, 40)], ids=["subjects-frame", "items-frame"])
def test_jax_and_numba_give_the_same_log_density_and_gradient(shape):
    """The compiled joint model, both frames (more subjects than items and the reverse,
    the language-model case with its zero-sum item deviations), at random points."""
    import pytensor
    import pytensor.tensor as pt

    from fluid_bayes import HierarchicalTwoPL
    from fluid_bayes.study.simulate import simulate_2pl

    data = simulate_2pl(*shape, seed=4).responses
    model = HierarchicalTwoPL(likelihood="joint").build(data)
    logp = model.logp()
    grads = pytensor.grad(logp, model.value_vars)
    rng = np.random.default_rng(5)
    values = model.initial_point()
    inputs = [pt.tensor(dtype=v.dtype, shape=np.shape(values[v.name])) for v in model.value_vars]
    outputs = pytensor.graph.clone_replace(
        [logp, *grads], dict(zip(model.value_vars, inputs, strict=True))
    )
    with warnings.catch_warnings():  # JAX drops the parameter checks (sigma > 0): it says so
        warnings.filterwarnings("ignore", "Skipping Check", UserWarning)
        fns = {mode: pytensor.function(inputs, outputs, mode=mode) for mode in ("NUMBA", "JAX")}
    for _ in range(3):
        point = [rng.normal(0.0, 0.5, np.shape(values[v.name])) for v in model.value_vars]
        ref, got = (fns[m](*point) for m in ("NUMBA", "JAX"))
        for r, g in zip(ref, got, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-9, atol=1e-9)
