"""Constant items integrated out of the joint likelihood (calibration.constant_items)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate
from scipy.special import log_expit

from fluid_bayes.calibration.constant_items import (
    ConstantItems,
    _constant_numpy,
    constant_items,
    constant_loglik,
    constant_numba_call,
    draw_constant_items,
)


def _exact_integral(theta, sign, loc_b, sigma_b, loc_la, sigma_la):
    """E over the item population of prod_i logistic(s a (theta_i - b)), by scipy.quad."""

    def inner(z2):
        a = np.exp(loc_la + sigma_la * z2)

        def f(z1):
            b = loc_b + sigma_b * z1
            return np.exp(log_expit(sign * a * (theta - b)).sum() - 0.5 * z1**2)

        breaks = sorted(np.clip((theta - loc_b) / sigma_b, -9, 9))
        v, _ = integrate.quad(f, -10, 10, points=breaks, limit=500, epsabs=0, epsrel=1e-12)
        return v * np.exp(-0.5 * z2**2) / (2 * np.pi)

    v, _ = integrate.quad(inner, -9, 9, limit=200, epsabs=0, epsrel=1e-11)
    return v


def _keys(rng, n=9):
    """Two keys (all right, all wrong), one with a missing subject."""
    theta = rng.normal(0.0, 1.0, n)
    mask = np.ones((2, n))
    mask[1, 3] = 0.0
    return theta, np.array([1.0, -1.0]), mask, np.array([3.0, 2.0])


@pytest.mark.parametrize("seed", range(6))
def test_integral_matches_adaptive_quadrature(seed):
    rng = np.random.default_rng(seed)
    theta, sign, mask, counts = _keys(rng)
    loc_b = np.array([-1.0, 1.0]) + rng.normal(0, 0.5, 2)
    loc_la = rng.normal(0.3, 0.4, 2)
    sigma_b, sigma_la = rng.uniform(0.8, 2.5), rng.uniform(0.4, 1.5)
    value = constant_numba_call(theta, loc_b, sigma_b, loc_la, sigma_la, sign, mask, counts)[0]
    exact = sum(
        c * np.log(_exact_integral(theta[m > 0], s, lb, sigma_b, la, sigma_la))
        for s, m, c, lb, la in zip(sign, mask, counts, loc_b, loc_la, strict=True)
    )
    # relative accuracy of each integral ~1e-5 or better (log error = count x relative)
    assert abs(float(value) - exact) < 1e-5 * counts.sum()


def test_numba_matches_numpy_and_finite_differences():
    rng = np.random.default_rng(7)
    theta, sign, mask, counts = _keys(rng)
    args = [theta, np.array([-0.8, 1.1]), 1.3, np.array([0.2, 0.4]), 0.7]
    fast = constant_numba_call(*args, sign, mask, counts)
    ref = _constant_numpy(*args, sign, mask, counts)
    for f, r in zip(fast, ref, strict=True):
        np.testing.assert_allclose(f, r, rtol=1e-10, atol=1e-10)
    h = 1e-6
    for pos in range(5):
        size = np.size(args[pos])
        for j in range(size):
            up = [np.array(v, dtype=float, copy=True) for v in args]
            dn = [np.array(v, dtype=float, copy=True) for v in args]
            up[pos].reshape(-1)[j] += h
            dn[pos].reshape(-1)[j] -= h
            fd = (
                _constant_numpy(*up, sign, mask, counts)[0]
                - _constant_numpy(*dn, sign, mask, counts)[0]
            ) / (2 * h)
            got = np.reshape(fast[pos + 1], -1)[j]
            # the gradient differentiates the integrand at fixed nodes; the computed
            # value also moves with the window (by the rule's own ~1e-6 error)
            assert abs(got - fd) < 1e-4 * max(1.0, abs(fd)), (pos, j, got, fd)


@pytest.mark.parametrize("mode", ["NUMBA", "JAX", "FAST_COMPILE"])
def test_op_gradient_in_pytensor(mode):
    rng = np.random.default_rng(3)
    theta_v, sign, mask, counts = _keys(rng)
    keys = ConstantItems(
        items=np.arange(5), key=np.array([0, 0, 0, 1, 1]), sign=sign, mask=mask, group=None,
        counts=counts,
    )  # fmt: skip
    theta, loc_b, loc_la = pt.dvector(), pt.dvector(), pt.dvector()
    sigma_b, sigma_la = pt.dscalar(), pt.dscalar()
    logp = constant_loglik(theta, loc_b, sigma_b, loc_la, sigma_la, keys)
    grads = pytensor.grad(logp, [theta, loc_b, sigma_b, loc_la, sigma_la])
    fn = pytensor.function([theta, loc_b, sigma_b, loc_la, sigma_la], [logp, *grads], mode=mode)
    args = [theta_v, np.array([-0.8, 1.1]), 1.3, np.array([0.2, 0.4]), 0.7]
    out = fn(*args)
    ref = _constant_numpy(*args, sign, mask, counts)
    for f, r in zip(out, ref, strict=True):
        np.testing.assert_allclose(f, r, rtol=1e-10, atol=1e-10)


def test_constant_items_are_keyed_by_sign_subjects_and_group():
    nan = np.nan
    values = np.array(
        [
            [1, 1, 0, 1, 0, 1],
            [1, 1, 0, nan, 0, 0],
            [1, 1, 0, 1, 1, 1],
        ]
    )
    const = constant_items(values)
    np.testing.assert_array_equal(const.items, [0, 1, 2, 3])
    # items 0 and 1 share a key (all right, everyone answered); 2 all wrong; 3 all right
    # with subject 1 missing
    assert const.key[0] == const.key[1]
    assert len({const.key[0], const.key[2], const.key[3]}) == 3
    assert sorted(const.counts) == [1.0, 1.0, 2.0]
    k3 = const.key[3]
    np.testing.assert_array_equal(const.mask[k3], [1.0, 0.0, 1.0])
    assert const.sign[const.key[2]] == -1.0
    grouped = constant_items(values, codes=np.array([0, 1, 0, 0, 0, 0]))
    assert grouped.key[0] != grouped.key[1]
    assert list(grouped.group[grouped.key[:2]]) == [0, 1]


def test_draws_follow_the_conditional_posterior():
    """Rejection draws of one item match its posterior computed on a fine grid."""
    rng = np.random.default_rng(11)
    theta = rng.normal(0.0, 1.0, 6)
    values = np.ones((6, 2))
    values[:, 1] = 0.0
    const = constant_items(values)
    n = 20_000
    loc_b, loc_la = np.full((n, 2), 0.5), np.full((n, 2), 0.1)
    sigma_b, sigma_la = np.full(n, 1.2), np.full(n, 0.6)
    a, b = draw_constant_items(
        np.tile(theta, (n, 1)), loc_b, sigma_b, loc_la, sigma_la, const, np.random.default_rng(0)
    )
    assert np.isfinite(a).all() and np.isfinite(b).all()
    grid_b = np.linspace(0.5 - 9 * 1.2, 0.5 + 9 * 1.2, 1201)
    grid_la = np.linspace(0.1 - 7 * 0.6, 0.1 + 7 * 0.6, 801)
    bb, la = np.meshgrid(grid_b, grid_la, indexing="ij")
    for col in (0, 1):
        sign = const.sign[const.key[col]]
        logpost = (
            -0.5 * ((bb - 0.5) / 1.2) ** 2
            - 0.5 * ((la - 0.1) / 0.6) ** 2
            + log_expit(sign * np.exp(la)[..., None] * (theta - bb[..., None])).sum(-1)
        )
        w = np.exp(logpost - logpost.max())
        w /= w.sum()
        mean_b, mean_la = (w * bb).sum(), (w * la).sum()
        sd_b = np.sqrt((w * (bb - mean_b) ** 2).sum())
        sd_la = np.sqrt((w * (la - mean_la) ** 2).sum())
        se = 4.0 / np.sqrt(n)  # 4 Monte Carlo standard errors, in SD units
        assert abs(b[:, col].mean() - mean_b) < se * sd_b
        assert abs(np.log(a[:, col]).mean() - mean_la) < se * sd_la
        assert abs(b[:, col].std() / sd_b - 1) < 0.03
        assert abs(np.log(a[:, col]).std() / sd_la - 1) < 0.03


def _chembench_slice():
    from conftest import PACKAGE_DATA

    from fluid_bayes import read_responses

    data = read_responses(PACKAGE_DATA / "chembench" / "responses.csv")
    return data.select(subjects=list(data.subjects[:8]), items=list(data.items[:60]))


def test_integrated_constant_items_give_the_sampled_posterior():
    """Real ChemBench answers (8 models x 60 items, with constant items): integrating the
    constant items out and drawing them afterwards samples the same posterior as
    sampling them, up to Monte Carlo error."""
    import warnings

    from fluid_bayes import HierarchicalTwoPL

    data = _chembench_slice()
    n_const = len(data.report.constant_correct) + len(data.report.constant_wrong)
    assert n_const >= 10
    banks = {}
    for mode in ("integrate", "sample"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            banks[mode] = HierarchicalTwoPL(constant_items=mode).fit(
                data, draws=500, tune=500, seed=4
            )
    integ, sampled = banks["integrate"], banks["sample"]
    assert integ.meta.sampler["constant_items_integrated"] == n_const
    assert sampled.meta.sampler["constant_items_integrated"] == 0
    assert list(integ.items) == list(data.items)
    assert np.isfinite(integ.posterior["a"].values).all()
    assert integ.convergence.max_rhat < 1.05  # 8 models, 4 x 500 draws: loosely mixed
    # hyperparameters and every item's parameters agree within ~4 Monte Carlo errors
    for name in ("mu_b", "sigma_b", "mu_log_a", "sigma_log_a"):
        x, y = integ.posterior[name], sampled.posterior[name]
        assert abs(float(x.mean() - y.mean())) < 0.25 * float(y.std()), name
    const = list(data.report.constant_correct + data.report.constant_wrong)
    for var, f in (("b", lambda v: v), ("a", np.log)):
        x = f(integ.posterior[var].sel(item=const))
        y = f(sampled.posterior[var].sel(item=const))
        z = (x.mean(("chain", "draw")) - y.mean(("chain", "draw"))) / y.std(("chain", "draw"))
        assert float(np.abs(z).median()) < 0.15, var
        assert float(np.abs(z).max()) < 0.4, var
    # same seed, same draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = HierarchicalTwoPL(constant_items="integrate").fit(data, draws=500, tune=500, seed=4)
    np.testing.assert_array_equal(again.posterior["b"].values, integ.posterior["b"].values)


def test_auto_integrates_only_where_most_items_are_constant():
    """``constant_items="auto"``: MMLU-Redux (3,610 of 5,700 items constant for its 14
    models) is integrated, ChemBench (134 of 2,854) is sampled, LSAT (marginal
    likelihood) never."""
    from conftest import PACKAGE_DATA

    from fluid_bayes import HierarchicalTwoPL, read_responses

    mmlu = read_responses(PACKAGE_DATA / "mmlu_redux_helm" / "responses.csv")
    chem = read_responses(PACKAGE_DATA / "chembench" / "responses.csv")
    lsat = read_responses(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
    const = HierarchicalTwoPL().integrated_items(mmlu)
    assert const.n_items == 3610
    assert sorted(const.counts) == [204.0, 3406.0]
    assert HierarchicalTwoPL().integrated_items(chem) is None
    assert HierarchicalTwoPL(constant_items="integrate").integrated_items(chem).n_items == 134
    assert HierarchicalTwoPL(constant_items="integrate").integrated_items(lsat) is None
    assert HierarchicalTwoPL(constant_items="sample").integrated_items(mmlu) is None
    # the sampled model has only the non-constant items
    model = HierarchicalTwoPL().build(mmlu)
    assert len(model.coords["item"]) == 5700 - 3610
    with pytest.raises(ValueError, match="constant_items must be auto, integrate or sample"):
        HierarchicalTwoPL(constant_items="drop")
