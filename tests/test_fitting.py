"""Sampling in blocks until converged (fluid_bayes.calibration.fitting, nutpie)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import PACKAGE_DATA

from fluid_bayes import HierarchicalTwoPL, read_responses
from fluid_bayes.calibration.model import MAX_DRAWS_FACTOR


def _slice():
    """Real ChemBench answers, 8 models x 40 items."""
    data = read_responses(PACKAGE_DATA / "chembench" / "responses.csv")
    return data.select(subjects=list(data.subjects[:8]), items=list(data.items[100:140]))


def _fit(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HierarchicalTwoPL().fit(data, tune=150, seed=3, **kw)


def test_unconverged_run_goes_on_and_keeps_the_draws_of_a_run_of_that_length():
    """20 draws x 4 chains cannot reach a bulk ESS of 400, nor can 60: the run goes on
    in blocks of 20 to its cap, and its draws are those of a run of exactly 60, whose
    first 40 are those of a run of exactly 40."""
    data = _slice()
    extended = _fit(data, draws=20, max_draws=60)
    exact60 = _fit(data, draws=60, max_draws=60)
    exact40 = _fit(data, draws=40, max_draws=40)
    assert extended.meta.sampler["draws"] == 60
    assert extended.meta.sampler["min_draws"] == 20
    assert extended.meta.sampler["max_draws"] == 60
    assert extended.posterior.sizes["draw"] == 60
    assert extended.tree["sample_stats"].to_dataset().sizes["draw"] == 60
    for name in ("theta", "a", "b", "sigma_log_a"):
        got = extended.posterior[name].values
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(got, exact60.posterior[name].values)
        np.testing.assert_array_equal(got[:, :40], exact40.posterior[name].values)
    assert not extended.convergence.ok  # still reported as not converged


def test_converged_run_stops_at_the_first_check(lsat7_bank):
    """LSAT-7 with every default converges after its first 1,000 draws and stops."""
    assert lsat7_bank.convergence.ok
    assert lsat7_bank.meta.sampler["draws"] == 1000
    assert lsat7_bank.meta.sampler["max_draws"] == MAX_DRAWS_FACTOR * 1000
    assert lsat7_bank.posterior.sizes["draw"] == 1000


def test_max_draws_below_draws_is_refused():
    with pytest.raises(ValueError, match=r"max_draws \(10\) must be at least draws \(20\)"):
        _fit(_slice(), draws=20, max_draws=10)


def test_draws_are_capped_by_the_trace_budget(monkeypatch):
    """4 chains x 100 draws of 1,000 float64 take 3.2 MB: a 10 MB budget holds 300
    draws per chain (in blocks of 100), and lowering the cap is announced."""
    import xarray as xr

    from fluid_bayes.calibration import fitting

    post = xr.Dataset({"x": (("chain", "draw", "k"), np.zeros((4, 100, 1000)))})
    trace = xr.DataTree.from_dict({"posterior": post})
    monkeypatch.setattr(fitting, "TRACE_BUDGET_BYTES", 10_000_000)
    with pytest.warns(RuntimeWarning, match="stops at 300 draws per chain, not 800"):
        assert fitting._affordable(trace, 100, 100, 800) == 300
    assert fitting._affordable(trace, 100, 100, 300) == 300  # within budget: unchanged
    monkeypatch.setattr(fitting, "TRACE_BUDGET_BYTES", 1_000)
    with pytest.warns(RuntimeWarning):
        assert fitting._affordable(trace, 100, 100, 800) == 100  # never below the draws held


def test_draws_do_not_depend_on_how_many_chains_run_at_once(monkeypatch):
    """Each chain is a seeded nutpie run of its own: one chain at a time or one per
    core, the draws are the same, and the chains differ from each other."""
    import os

    data = _slice()
    per_core = _fit(data, draws=30)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    one_at_a_time = _fit(data, draws=30)
    for name in ("theta", "a", "b", "sigma_log_a"):
        got = one_at_a_time.posterior[name].values
        np.testing.assert_array_equal(got, per_core.posterior[name].values)
        assert not np.array_equal(got[0], got[1])
    assert per_core.meta.sampler["chains"] == 4
