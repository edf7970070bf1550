"""Refit on old + new answers, linked onto the old scale (real, tiny sampling)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from fluid_bayes import HierarchicalTwoPL, ItemBank
from fluid_bayes.cli.main import main
from fluid_bayes.data.responses import from_array
from fluid_bayes.exceptions import BankError, DataError
from fluid_bayes.irt import icc
from fluid_bayes.upkeep.drift import drift
from fluid_bayes.upkeep.refit import combine_answers, refit

TINY = {"draws": 150, "tune": 200, "chains": 2, "seed": 3}


def _answers(theta, a, b, seed, prefix, items):
    rng = np.random.default_rng(seed)
    y = (rng.random((theta.size, a.size)) < icc(theta[:, None], a, b)).astype(float)
    return from_array(y, subjects=[f"{prefix}{k:02d}" for k in range(theta.size)], items=items,
                      source=f"{prefix} answers")  # fmt: skip


@pytest.fixture(scope="module")
def old_and_new():
    rng = np.random.default_rng(11)
    a, b = np.exp(rng.normal(0.2, 0.3, 40)), rng.normal(0, 1, 40)
    items = [f"i{j:02d}" for j in range(40)]
    old = _answers(rng.normal(0, 1, 60), a, b, 1, "old", items)
    new = _answers(rng.normal(1.5, 0.5, 15), a, b, 2, "new", items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = HierarchicalTwoPL(likelihood="joint").fit(old, **TINY)
    return bank, old, new


def test_fitted_banks_store_their_answers(old_and_new, tmp_path):
    bank, old, _ = old_and_new
    assert bank.observed_data == old
    back = ItemBank.load(bank.save(tmp_path / "b.nc"))
    assert back.observed_data == old
    assert back.observed_data.fingerprint() == back.meta.data_fingerprint


def test_combine_answers_policies(old_and_new):
    _, old, new = old_and_new
    both, rep, added = combine_answers(old, new)
    assert both.n_subjects == 75 and rep == () and added == ()
    again = old.select(subjects=list(old.subjects[:3]))
    with pytest.raises(DataError, match="3 subject\\(s\\) are already calibration subjects"):
        combine_answers(old, again)
    kept, rep, _ = combine_answers(old, again, duplicates="replace")
    assert rep == old.subjects[:3] and kept.n_subjects == 60
    with pytest.raises(DataError, match="no new subject left"):
        combine_answers(old, again, duplicates="skip")
    other = from_array(np.ones((2, 2)), subjects=["x", "y"], items=["z1", "z2"], source="other")
    with pytest.raises(DataError, match="other: none of its 2 items is in the bank"):
        combine_answers(old, other)


def test_refit_links_onto_the_old_scale(old_and_new):
    bank, old, new = old_and_new
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = refit(bank, new, **TINY)
    lin = res.bank.meta.lineage
    assert lin["parent_config_hash"] == bank.config_hash
    assert lin["refit_of"] == bank.config_hash and lin["added_subjects"] == 15
    assert res.bank.observed_data.n_subjects == 75
    # the refit's own scale is centred on old + new abilities: the new models are
    # stronger, so the link shifts the scale up (B > 0) and leaves it about as wide
    assert res.linking.B_mean > 0.1
    assert 0.7 < res.linking.A_mean < 1.4
    # on the old scale, the old subjects keep their abilities
    t_old = bank.subjects["theta_mean"]
    t_new = res.bank.subjects["theta_mean"].loc[t_old.index]
    assert np.corrcoef(t_old, t_new)[0, 1] > 0.95
    assert abs(t_new.mean() - t_old.mean()) < 0.15
    # no item was made to move: few drift
    rep = drift(bank, res.unlinked)
    assert rep.n_drifted <= 2
    json.dumps(res.to_dict())


def test_refit_needs_the_old_answers(old_and_new):
    bank, old, new = old_and_new
    bare = ItemBank(tree=bank.tree.copy(), meta=bank.meta)
    del bare.tree["observed"]
    with pytest.raises(BankError, match="does not store its calibration answers"):
        refit(bare, new, **TINY)
    with pytest.raises(BankError, match="not the bank's calibration data"):
        refit(bare, new, old_data=new, **TINY)


def test_cli_refit_and_drift(old_and_new, tmp_path, capsys):
    bank, _, new = old_and_new
    path = bank.save(tmp_path / "old.nc")
    csv = tmp_path / "new.csv"
    new.to_frame().to_csv(csv)
    out = tmp_path / "refit.nc"
    code = main(["refit", str(path), "--add", str(csv), "--out", str(out), "--draws", "100",
                 "--tune", "150", "--chains", "2", "--seed", "1", "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["added_subjects"][:2] == ["new00", "new01"] and summary["duplicates"] == []
    assert {"A", "B"} <= set(summary["linking"]) and summary["parent"] == bank.config_hash
    assert main(["drift", str(path), str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"linking", "items", "recorded_linking"} <= set(rep)
    assert len(rep["items"]) == 40
    assert {"item", "delta_a_mean", "delta_b_mean", "p_drift_a", "p_drift_b",
            "drifted"} <= set(rep["items"][0])  # fmt: skip
    # the refit is already on the old scale: the link computed by drift is near identity
    assert abs(rep["linking"]["A"]["mean"] - 1) < 0.1 and abs(rep["linking"]["B"]["mean"]) < 0.1
    # repeating subjects already in the bank is refused by default
    old_csv = tmp_path / "old_answers.csv"
    bank.observed_data.select(subjects=["old00", "old01"]).to_frame().to_csv(old_csv)
    assert main(["refit", str(path), "--add", str(old_csv), "--out", str(tmp_path / "x.nc"),
                 "--draws", "20", "--tune", "20"]) == 2  # fmt: skip
    assert "already calibration subjects" in capsys.readouterr().err
