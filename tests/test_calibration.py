"""Calibration: published LSAT estimates, the joint model's identification, priors, strictness."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import PACKAGE_DATA

from fluid_bayes import (
    ConvergenceError,
    DataError,
    Gamma,
    HierarchicalTwoPL,
    Normal,
    Priors,
    read_responses,
)
from fluid_bayes.study.simulate import simulate_2pl, to_sample_scale


def _published(name: str) -> pd.DataFrame:
    pub = pd.read_csv(PACKAGE_DATA / "lsat" / "published_2pl.csv")
    pub = pub[pub["dataset"] == name].reset_index(drop=True)
    if pub["b"].isna().all():  # mirt's slope/intercept form: P = logistic(a theta + d)
        pub["b"] = -pub["d"] / pub["a"]
    return pub


@pytest.mark.parametrize("name", ["LSAT7", "LSAT6"])
def test_lsat_matches_published_marginal_ml(name, lsat7_bank, lsat6_bank):
    bank = {"LSAT7": lsat7_bank, "LSAT6": lsat6_bank}[name]
    pub = _published(name)
    s = bank.summary()
    assert len(s) == 5
    a, b = pub["a"].to_numpy(), pub["b"].to_numpy()
    # every published estimate inside the 94% HDI
    assert np.all((s["a_hdi_low"].to_numpy() <= a) & (a <= s["a_hdi_high"].to_numpy()))
    assert np.all((s["b_hdi_low"].to_numpy() <= b) & (b <= s["b_hdi_high"].to_numpy()))
    # posterior means close to the marginal-ML values
    assert np.max(np.abs(s["a_mean"].to_numpy() - a)) <= 0.25
    assert np.max(np.abs(s["b_mean"].to_numpy() - b)) <= 0.35
    conv = bank.convergence
    assert conv.max_rhat <= 1.01
    # five items leave the hyperparameters a mild funnel: a few stray divergences in
    # 4,000 draws (1 with a warm PyTensor cache, 3 from a cold one: floating-point
    # differences between compiles change the trajectories)
    assert conv.divergences <= 5
    assert bank.meta.sampler["likelihood"] == "marginal"


def test_lsat_abilities_are_exact_grid_posteriors(lsat7_bank):
    """Marginal model: a subject's ability draws follow the grid posterior (checked by quad)."""
    from scipy import integrate
    from scipy.special import expit
    from scipy.stats import norm

    data = read_responses(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
    post = lsat7_bank.posterior
    theta = post["theta"]
    # all-correct pattern: pick one subject with all five right
    row = int(np.flatnonzero(np.nansum(data.values, axis=1) == 5)[0])
    subject = data.subjects[row]
    a = post["a"].values.reshape(-1, 5)
    b = post["b"].values.reshape(-1, 5)
    # independent computation: E[theta | y] per draw by adaptive quadrature, then average
    means = []
    for k in range(0, a.shape[0], 50):

        def lik(t, k=k):
            return np.prod(expit(a[k] * (t - b[k]))) * norm.pdf(t)

        z = integrate.quad(lik, -10, 10)[0]
        means.append(integrate.quad(lambda t, k=k, z=z: t * lik(t, k) / z, -10, 10)[0])
    expected = float(np.mean(means))
    got = float(theta.sel(subject=subject).values.reshape(-1)[::50].mean())
    sd = float(theta.sel(subject=subject).std())
    assert abs(got - expected) < 4 * sd / np.sqrt(len(means)) + 0.02


def test_joint_model_standardizes_abilities_and_recovers():
    """Both sampling frames of the joint model: identified, recovering, and the same model."""
    sim = to_sample_scale(simulate_2pl(40, 60, seed=3))
    means = {}
    for frame in ("items", "subjects"):
        spec = HierarchicalTwoPL(likelihood="joint", frame=frame)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bank = spec.fit(sim.responses, draws=300, tune=300, seed=2)
        theta = bank.posterior["theta"]
        # identification: every draw has sample mean 0 and (population) SD 1
        np.testing.assert_allclose(theta.mean("subject"), 0.0, atol=1e-9)
        np.testing.assert_allclose(theta.std("subject"), 1.0, atol=1e-9)
        s = bank.summary()
        assert np.corrcoef(s["b_mean"], sim.b)[0, 1] > 0.9
        assert np.corrcoef(bank.subjects["theta_mean"], sim.theta)[0, 1] > 0.95
        assert bank.meta.sampler["likelihood"] == "joint"
        assert bank.meta.config["frame"] == frame
        assert set(bank.posterior.data_vars) >= {"a", "b", "theta", "mu_b", "sigma_b"}
        means[frame] = s
    # one model in two coordinate systems: the same posterior up to Monte Carlo error
    for col, tol in (("b_mean", 0.08), ("a_mean", 0.08)):
        diff = np.abs(means["items"][col] - means["subjects"][col])
        sd = np.maximum(means["items"][col.replace("mean", "sd")], 0.05)
        assert np.median(diff / sd) < tol * 4, col


def test_joint_frame_follows_the_data_shape():
    """``auto``: the plain (subjects) frame when subjects outnumber items."""
    wide, tall = simulate_2pl(20, 50, seed=1).responses, simulate_2pl(60, 40, seed=1).responses
    assert HierarchicalTwoPL().resolve_frame(wide) == "items"
    assert HierarchicalTwoPL().resolve_frame(tall) == "subjects"
    assert HierarchicalTwoPL(frame="items").resolve_frame(tall) == "items"
    free = {v.name for v in HierarchicalTwoPL(likelihood="joint").build(tall).free_RVs}
    assert "theta_population" in free and "theta_anchor" not in free
    with pytest.raises(ValueError, match="frame must be auto, items or subjects"):
        HierarchicalTwoPL(frame="nope")


@pytest.mark.parametrize("centered", [True, False])
def test_item_mean_and_zero_sum_deviations_are_independent_normals(centered):
    """The items frame's split of J items into mean + zero-sum deviations is exact:
    the sum has the independent N(0, sigma) prior it replaces (variance sigma^2 per
    item, no correlation), for both parametrizations."""
    import pymc as pm

    n, sigma = 6, 0.7
    with pm.Model(coords={"item": list(range(n))}):
        dev, mean = HierarchicalTwoPL._mean_and_deviations("b", sigma, n, centered)
        x = mean + dev
    draws = pm.draw(x, draws=40_000, random_seed=5)
    assert draws.shape == (40_000, n)
    np.testing.assert_allclose(draws.var(axis=0), sigma**2, rtol=0.04)
    corr = np.corrcoef(draws.T)[np.triu_indices(n, 1)]
    assert np.abs(corr).max() < 0.03
    np.testing.assert_allclose(draws.mean(axis=0), 0.0, atol=0.02)
    # the deviations alone sum to zero in every draw
    np.testing.assert_allclose(pm.draw(dev, draws=50, random_seed=1).sum(axis=1), 0, atol=1e-12)


def test_items_frame_takes_the_item_means_out_of_the_likelihood():
    """In the items frame the sampled items' mean difficulty and mean log discrimination
    move only the prior: the likelihood is the same whatever their values (so the
    directions in which every item and ability move together are not ridges)."""
    sim = simulate_2pl(20, 50, seed=1)
    model = HierarchicalTwoPL(likelihood="joint", frame="items").build(sim.responses)
    free = {v.name for v in model.free_RVs}
    assert {"b_raw", "b_raw_mean", "log_a_raw", "log_a_raw_mean", "theta_anchor"} <= free
    (loglik_graph,) = model.replace_rvs_by_values([model["loglik"]])
    loglik = model.compile_fn(loglik_graph, inputs=model.value_vars, on_unused_input="ignore")
    logp = model.compile_logp()
    point = {k: v + 0.3 for k, v in model.initial_point(random_seed=3).items()}
    moved = dict(point, b_raw_mean=point["b_raw_mean"] - 0.9)
    moved["log_a_raw_mean"] = point["log_a_raw_mean"] + 0.5
    assert loglik(moved) == pytest.approx(loglik(point), rel=1e-12)
    assert logp(moved) != pytest.approx(logp(point), rel=1e-6)  # the prior does move
    dev = "b_raw_zerosum__"
    other = dict(point, **{dev: point[dev] + 0.1 * np.arange(len(point[dev]))})
    assert loglik(other) != pytest.approx(loglik(point), rel=1e-6)


def test_missing_answers_are_skipped_not_imputed():
    sim = simulate_2pl(30, 40, seed=5, missing=0.3)
    assert np.isnan(sim.responses.values).any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL(likelihood="joint").fit(sim.responses, draws=200, tune=200)
    assert np.isfinite(bank.posterior["b"].values).all()
    n = bank.subjects["n_answered"].to_numpy()
    np.testing.assert_array_equal(n, sim.responses.mask.sum(axis=1))


def test_group_pooling_has_group_dimension():
    sim = simulate_2pl(25, 40, seed=7)
    meta = pd.DataFrame(
        {"topic": ["alg" if j % 2 else "geo" for j in range(40)]},
        index=pd.Index(sim.responses.items, name="item"),
    )
    data = sim.responses.with_item_meta(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL(group_by="topic").fit(data, draws=150, tune=150)
    assert bank.posterior["mu_b_group"].dims == ("chain", "draw", "group")
    assert list(bank.posterior["group"].values) == ["alg", "geo"]
    assert list(bank.item_meta["topic"].iloc[:2]) == ["geo", "alg"]
    with pytest.raises(DataError, match="no such item metadata column"):
        HierarchicalTwoPL(group_by="nope").build(data)


def test_priors_are_objects_with_defaults_and_overrides():
    p = Priors()
    assert p.sigma_b == Gamma(2.0, 1.0)
    q = p.updated({"mu_b": {"dist": "Normal", "mu": 0.0, "sigma": 3.0}})
    assert q.mu_b == Normal(0.0, 3.0) and q.sigma_b == p.sigma_b
    assert Priors.from_dict(q.to_dict()) == q
    assert HierarchicalTwoPL(priors=q).config_hash() != HierarchicalTwoPL().config_hash()
    with pytest.raises(ValueError, match="unknown prior"):
        p.updated({"sigma_theta": Normal()})
    with pytest.raises(ValueError, match="sigma > 0"):
        Normal(0.0, -1.0)


def test_strict_fit_raises_on_non_convergence():
    sim = simulate_2pl(20, 30, seed=11)
    with pytest.raises(ConvergenceError, match="NOT CONVERGED"):
        HierarchicalTwoPL(likelihood="joint").fit(
            sim.responses, draws=15, tune=15, seed=1, strict=True
        )


def test_non_convergence_warns_naming_worst_parameters():
    from fluid_bayes.calibration.fitting import ConvergenceWarning

    sim = simulate_2pl(20, 30, seed=11)
    with pytest.warns(ConvergenceWarning, match=r"worst parameters: .*\["):
        HierarchicalTwoPL(likelihood="joint").fit(sim.responses, draws=15, tune=15, seed=1)


def test_same_seed_same_bank():
    data = read_responses(PACKAGE_DATA / "lsat" / "lsat6_patterns.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = HierarchicalTwoPL().fit(data, draws=100, tune=100, seed=4)
        two = HierarchicalTwoPL().fit(data, draws=100, tune=100, seed=4)
    np.testing.assert_array_equal(one.posterior["a"].values, two.posterior["a"].values)
    np.testing.assert_array_equal(one.posterior["theta"].values, two.posterior["theta"].values)
    assert one.config_hash == two.config_hash


def test_advi_is_labelled_an_approximation():
    data = read_responses(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL().fit(data, sampler="advi", draws=100, tune=100, seed=1)
    assert bank.meta.kind == "approximate"
    assert bank.convergence.approximate and not bank.convergence.ok
    assert "approximation" in str(bank.convergence)
    assert bank.posterior.sizes["draw"] == 100


@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_other_nuts_backends(sampler):
    pytest.importorskip("numpyro" if sampler == "numpyro" else "pymc")
    data = read_responses(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL().fit(data, sampler=sampler, draws=100, tune=100, seed=1)
    assert bank.meta.sampler["sampler"] == sampler
    assert bank.posterior.sizes["draw"] == 100
    # same answer as nutpie's within Monte Carlo error
    assert float(bank.summary()["b_mean"].iloc[1]) == pytest.approx(-0.75, abs=0.2)
