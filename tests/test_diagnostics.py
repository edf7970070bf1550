"""Convergence diagnostics: ArviZ's numbers, whether computed in one process or several."""

from __future__ import annotations

import subprocess
import sys

import arviz as az
import numpy as np
import pytest
import xarray as xr

from fluid_bayes.calibration import diagnostics
from fluid_bayes.calibration.diagnostics import check_convergence


def _posterior(seed: int = 3, n_items: int = 40) -> xr.DataTree:
    """Four chains of AR(1) draws; chain 3 of item 0 shifted (a mixing failure)."""
    rng = np.random.default_rng(seed)
    shape = (4, 300, n_items)
    noise = rng.normal(size=shape)
    x = np.empty(shape)
    x[:, 0] = noise[:, 0]
    for t in range(1, shape[1]):  # autocorrelated: ESS well below the draw count
        x[:, t] = 0.8 * x[:, t - 1] + noise[:, t]
    x[3, :, 0] += 3.0
    post = xr.Dataset(
        {
            "a": (("chain", "draw", "item"), np.exp(0.1 * x)),
            "b": (("chain", "draw", "item"), x[..., ::-1].copy()),
            "sigma_b": (("chain", "draw"), 1.0 + 0.01 * x[..., 1]),
        },
        coords={"item": [f"q{j}" for j in range(n_items)]},
    )
    return xr.DataTree.from_dict({"posterior": post})


def _expected(tree: xr.DataTree, names: list[str]):
    post = tree["posterior"].to_dataset()[names]
    vals = {m: [] for m in ("rhat", "bulk", "tail")}
    for name in names:
        rhat = az.rhat(post[name])
        vals["rhat"].append(np.atleast_1d(rhat.values))
        vals["bulk"].append(np.atleast_1d(az.ess(post[name], method="bulk").values))
        vals["tail"].append(np.atleast_1d(az.ess(post[name], method="tail").values))
    return {k: np.concatenate(v) for k, v in vals.items()}


@pytest.mark.parametrize("per_worker", [10_000, 7])
def test_convergence_equals_arviz_in_one_process_or_several(monkeypatch, per_worker):
    """Blocks computed by child processes give ArviZ's numbers exactly, worst labelled."""
    monkeypatch.setattr(diagnostics, "PARAMS_PER_WORKER", per_worker)
    monkeypatch.setattr(diagnostics, "_cores", lambda: 3)
    tree = _posterior()
    names = ["a", "b", "sigma_b"]
    n = 81
    assert diagnostics._workers(n) == (1 if per_worker > n else 3)
    report = check_convergence(tree, var_names=names)
    want = _expected(tree, names)
    assert report.max_rhat == np.max(want["rhat"])
    assert report.min_ess_bulk == np.min(want["bulk"])
    assert report.min_ess_tail == np.min(want["tail"])
    assert report.max_rhat > 1.2  # the shifted chain is caught
    # the two parameters holding the shifted chain: a[q0] and b[q39] (b is x reversed)
    assert {w[0] for w in report.worst[:2]} == {"a[q0]", "b[q39]"}
    values, labels = diagnostics._matrix(tree["posterior"].to_dataset()[names])
    assert values.shape == (4, 300, n) and labels[-1] == "sigma_b"
    np.testing.assert_array_equal(diagnostics._per_parameter(values)[0], want["rhat"])


def test_failed_worker_is_reported_and_recomputed(monkeypatch, tmp_path):
    """A child that dies is named in a warning; its block is computed in-process."""
    monkeypatch.setattr(diagnostics, "PARAMS_PER_WORKER", 7)
    monkeypatch.setattr(diagnostics, "_cores", lambda: 2)
    monkeypatch.setattr(diagnostics.sys, "executable", str(tmp_path / "no-such-python"))
    values, _ = diagnostics._matrix(_posterior()["posterior"].to_dataset()[["a", "b"]])
    with pytest.raises(FileNotFoundError):  # Popen itself fails: nothing silent
        diagnostics._per_parameter(values)
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(diagnostics.sys, "executable", str(fake))
    with pytest.warns(RuntimeWarning, match=r"exit 3\): boom"):
        got = diagnostics._per_parameter(values)
    np.testing.assert_array_equal(got, diagnostics.per_parameter(values))


def test_worker_runs_as_a_script_without_the_package(tmp_path):
    """The worker file runs standalone (the child imports ArviZ, not fluid_bayes)."""
    values = _posterior()["posterior"].to_dataset()["b"].values
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, values)
    code = (
        "import runpy, sys; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__'); "
        "assert 'fluid_bayes' not in sys.modules, 'worker imported fluid_bayes'"
    )
    script = diagnostics.Path(diagnostics.__file__).with_name("diagworker.py")
    subprocess.run([sys.executable, "-c", code, str(script), str(src), str(dst)], check=True)
    np.testing.assert_array_equal(np.load(dst), diagnostics.per_parameter(values))
