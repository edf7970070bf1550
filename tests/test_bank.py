"""Item bank: netCDF round trip, provenance, refusal of foreign files, point banks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from fluid_bayes import BankError, DataError, ItemBank, read_point_params
from fluid_bayes.dims import BANK_FORMAT_VERSION


def test_round_trip_keeps_draws_and_provenance(lsat7_bank, tmp_path):
    path = lsat7_bank.save(tmp_path / "sub" / "lsat7.nc")
    assert [p.name for p in path.parent.iterdir()] == ["lsat7.nc"]  # no temp file left
    back = ItemBank.load(path)
    for v in ("a", "b", "theta", "mu_b", "sigma_log_a"):
        np.testing.assert_array_equal(back.posterior[v].values, lsat7_bank.posterior[v].values)
    assert back.meta == lsat7_bank.meta
    assert back.items == ("Item.1", "Item.2", "Item.3", "Item.4", "Item.5")
    assert back.meta.model_type == "hierarchical-2pl"
    assert back.meta.package_version
    assert len(back.meta.data_fingerprint) == 64
    assert back.meta.config["priors"]["sigma_b"]["dist"] == "Gamma"
    assert back.convergence == lsat7_bank.convergence
    assert back.subjects.shape[0] == 1000
    assert {"theta_mean", "theta_sd", "theta_hdi_low", "accuracy"} <= set(back.subjects.columns)
    assert int(back.tree["sample_stats"]["diverging"].sum()) == lsat7_bank.convergence.divergences


def test_summary_json_fields(lsat7_bank):
    d = lsat7_bank.summary_dict()
    for key in (
        "n_items",
        "n_subjects",
        "chains",
        "draws",
        "max_rhat",
        "min_ess_bulk",
        "divergences",
    ):
        assert key in d
    assert d["n_items"] == 5 and d["n_subjects"] == 1000
    item = d["items"][0]
    assert set(item) == {
        "item",
        "a_mean",
        "a_sd",
        "a_hdi_low",
        "a_hdi_high",
        "b_mean",
        "b_sd",
        "b_hdi_low",
        "b_hdi_high",
    }
    a = lsat7_bank.posterior["a"].sel(item="Item.1").values.ravel()
    assert item["a_mean"] == pytest.approx(a.mean())
    assert item["a_hdi_low"] < item["a_mean"] < item["a_hdi_high"]
    json.dumps(d)  # serializable


def test_load_refuses_foreign_and_other_version(lsat7_bank, tmp_path):
    with pytest.raises(BankError, match="no such bank file"):
        ItemBank.load(tmp_path / "missing.nc")
    text = tmp_path / "text.nc"
    text.write_text("item_id,a,b\n")
    with pytest.raises(BankError, match="not a netCDF item bank"):
        ItemBank.load(text)
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("d", np.arange(3.0))}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(BankError, match="not a fluid_bayes item bank"):
        ItemBank.load(other)
    path = lsat7_bank.save(tmp_path / "bank.nc")
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    tree.attrs["format_version"] = BANK_FORMAT_VERSION + 1
    tree.to_netcdf(tmp_path / "future.nc", engine="h5netcdf")
    with pytest.raises(BankError, match=f"format version {BANK_FORMAT_VERSION + 1}"):
        ItemBank.load(tmp_path / "future.nc")


def test_point_bank_from_params(tmp_path):
    csv = tmp_path / "params.csv"
    csv.write_text("item_id,a,b,subject\nq1,1.2,-0.5,alg\nq2,0.8,1.5,geo\n")
    bank = ItemBank.from_point_params(read_point_params(csv), source=str(csv))
    assert bank.is_point and bank.n_draws == 1
    s = bank.summary()
    assert s.loc["q1", "a_mean"] == 1.2 and s.loc["q2", "b_mean"] == 1.5
    assert s.loc["q1", "a_sd"] == 0 and s.loc["q1", "a_hdi_low"] == 1.2
    back = ItemBank.load(bank.save(tmp_path / "p.nc"))
    assert back.meta.kind == "point"
    assert list(back.item_meta["subject"]) == ["alg", "geo"]
    assert back.summary_dict()["max_rhat"] is None


def test_point_params_slope_intercept_and_errors(tmp_path):
    csv = tmp_path / "mirt.csv"
    csv.write_text("item_id,a,d\nx,2.0,1.0\n")
    assert read_point_params(csv).loc["x", "b"] == pytest.approx(-0.5)
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,a,b\nq1,1.0,0.0\nq2,abc,1.0\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3, item 'q2': a = 'abc'"):
        read_point_params(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("item_id,a,b\nq1,1,0\nq1,1,0\n")
    with pytest.raises(DataError, match=r"duplicate item id\(s\) \['q1'\]"):
        read_point_params(dup)
    cols = tmp_path / "cols.csv"
    cols.write_text("item_id,slope\nq1,1\n")
    with pytest.raises(DataError, match="needs columns a and b"):
        read_point_params(cols)


def test_thinned_float32_bank_is_compact_and_reads_as_float64(lsat7_bank, tmp_path):
    small = lsat7_bank.thinned(4)
    assert small.posterior.sizes["draw"] == lsat7_bank.posterior.sizes["draw"] // 4
    assert small.meta.sampler["thinned_by"] == 4
    full = lsat7_bank.save(tmp_path / "full.nc")
    path = small.save(tmp_path / "small.nc", float32=True)
    assert path.stat().st_size < full.stat().st_size / 4
    back = ItemBank.load(path)
    assert back.posterior["a"].dtype == np.float64
    np.testing.assert_allclose(back.posterior["a"].values, small.posterior["a"].values, rtol=1e-6)
    assert back.meta.convergence == lsat7_bank.meta.convergence
