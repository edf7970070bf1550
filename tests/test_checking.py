"""Model checking and refit advice on synthetic banks (no sampling)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import with_abilities

from fluid_bayes.bank import ItemBank
from fluid_bayes.calibration.diagnostics import ConvergenceReport
from fluid_bayes.data.responses import ResponseMatrix, from_array
from fluid_bayes.exceptions import BankError, DataError
from fluid_bayes.irt import icc
from fluid_bayes.upkeep.advice import RefitThresholds, advise
from fluid_bayes.upkeep.checking import BankCheck, check_bank, plot_bank_check, plot_khat
from fluid_bayes.upkeep.newmodels import NewModelsCheck, check_new_models, plot_new_models


@dataclass
class World:
    bank: ItemBank
    data: ResponseMatrix  # calibration answers
    a: np.ndarray  # true discriminations
    b: np.ndarray  # true difficulties
    rng: np.random.Generator

    def answers(self, theta, *, prefix: str = "new", items=None) -> ResponseMatrix:
        """Answers of new models with abilities ``theta``, simulated from the truth."""
        theta = np.asarray(theta, float)
        p = icc(theta[:, None], self.a, self.b)
        y = (self.rng.random(p.shape) < p).astype(float)
        ids = list(self.bank.items) if items is None else items
        return from_array(
            y, subjects=[f"{prefix}{k}" for k in range(len(theta))], items=ids,
            source=f"{prefix}.csv",
        )  # fmt: skip


def make_world(
    seed: int,
    *,
    n_items: int = 300,
    n_calib: int = 40,
    chains: int = 2,
    draws: int = 100,
    flip: int | None = None,
) -> World:
    """A bank whose posterior surrounds the truth, with the answers it was calibrated on.

    Truth: log a ~ N(0, 0.3), b ~ N(0, 1), calibration abilities N(0, 1) standardized
    (the joint fit's calibration-sample scale). Posterior: centred one posterior SD
    off the truth (0.2 on b, 0.1 on log a, 0.1 on theta) and spread by that SD.
    ``flip``: that item's calibration answers are inverted (a wrong answer key).
    """
    rng = np.random.default_rng(seed)
    items = [f"q{j:04d}" for j in range(n_items)]
    subjects = [f"old{i:03d}" for i in range(n_calib)]
    log_a, b = rng.normal(0, 0.3, n_items), rng.normal(0, 1, n_items)
    theta = rng.normal(size=n_calib)
    theta = (theta - theta.mean()) / theta.std()
    y = (rng.random((n_calib, n_items)) < icc(theta[:, None], np.exp(log_a), b)).astype(float)
    if flip is not None:
        y[:, flip] = 1 - y[:, flip]
    data = from_array(y, subjects=subjects, items=items, source="calibration.csv")

    def draws_of(truth, sd):
        centre = truth + rng.normal(0, sd, truth.shape)
        return centre + rng.normal(0, sd, (chains, draws, truth.size))

    bank = ItemBank.from_draws(
        np.exp(draws_of(log_a, 0.1)), draws_of(b, 0.2), items=items, source="synthetic"
    )
    meta = dataclasses.replace(bank.meta, data_fingerprint=data.fingerprint())
    bank = with_abilities(bank, draws_of(theta, 0.1), subjects, meta).with_observed(data)
    return World(bank, data, np.exp(log_a), b, rng)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(1)


@pytest.fixture(scope="module")
def bank_check(world) -> BankCheck:
    return check_bank(world.bank, seed=0)


# ----------------------------------------------------------- observed answers in the bank
def test_observed_round_trip(world, tmp_path):
    bank = world.bank
    assert bank.observed_data.fingerprint() == bank.meta.data_fingerprint
    path = bank.save(tmp_path / "b.nc", float32=True)
    back = ItemBank.load(path)
    obs = back.observed_data
    assert obs.fingerprint() == bank.meta.data_fingerprint
    assert back.tree["observed"].to_dataset()["answer"].dtype == np.int8
    assert back.a.dtype == np.float64
    assert back.thinned(2).observed_data.fingerprint() == bank.meta.data_fingerprint


def test_observed_keeps_missing_and_is_optional(world, tmp_path):
    y = np.array(world.data.values)
    y[0, :5] = np.nan
    data = from_array(y, subjects=world.data.subjects, items=world.data.items)
    bank = ItemBank(
        world.bank.tree, dataclasses.replace(world.bank.meta, data_fingerprint=data.fingerprint())
    )
    back = ItemBank.load(bank.with_observed(data).save(tmp_path / "m.nc"))
    assert np.isnan(back.observed_data.values[0, :5]).all()
    assert back.observed_data == data
    plain = ItemBank.from_draws(np.ones((1, 2, 3)), np.zeros((1, 2, 3)), items=list("xyz"),
                                source="t")  # fmt: skip
    assert plain.observed_data is None


def test_with_observed_refuses_other_answers(world):
    other = world.data.select(subjects=world.data.subjects[:10])
    with pytest.raises(BankError, match="not the bank's calibration data.*bank data_fingerprint"):
        world.bank.with_observed(other)
    # same fingerprint recorded but the subjects are not the bank's calibration subjects
    bank = ItemBank(
        world.bank.tree, dataclasses.replace(world.bank.meta, data_fingerprint=other.fingerprint())
    )
    with pytest.raises(BankError, match="subjects differ"):
        bank.with_observed(other)


# ------------------------------------------------------------------------- bank check
def test_check_bank_on_a_well_specified_bank(bank_check, world):
    c = bank_check
    assert len(c.items) == 300 and len(c.subjects) == 40
    assert c.n_draws_ppc == 200 and c.n_draws_loo == 200
    assert c.good_k == pytest.approx(1 - 1 / np.log10(200))
    # the fake posterior is not conditioned on the answers, so the p-values are about
    # uniform: ~5% extreme (a fitted posterior would give fewer)
    assert len(c.items_ppc_extreme) / len(c.items) < 0.1
    p = c.subjects["ppc_p_score"]
    assert ((p < 0.025) | (p > 0.975)).mean() < 0.15
    assert c.items["pareto_k"].notna().all() and np.isfinite(c.elpd_items)
    assert any("no MCMC diagnostics" in n for n in c.notes)
    d = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert d["n_items"] == 300 and "elpd_items" in d
    assert "bank check: 40 calibration subjects x 300 items" in str(c)


def test_check_bank_finds_an_inverted_item():
    w = make_world(2, flip=17)
    c = check_bank(w.bank, seed=0)
    flipped = "q0017"
    # what happens (measured): the inverted item has by far the worst LOO log score,
    # an observed item-rest correlation below every replicate, and a bad Pareto k
    assert c.worst_items.index[0] == flipped
    others = c.items.drop(flipped)["elpd_per_answer"]
    assert c.items.loc[flipped, "elpd_per_answer"] < others.min() - 1.0
    assert c.items.loc[flipped, "item_rest"] < 0
    assert c.items.loc[flipped, "ppc_p_item_rest"] > 0.975
    assert flipped in c.items_ppc_extreme
    assert c.items.loc[flipped, "pareto_k"] > c.good_k


def test_check_bank_needs_answers_and_abilities(world):
    bare = ItemBank(world.bank.tree.copy(), world.bank.meta)
    del bare.tree["observed"]
    with pytest.raises(BankError, match="with_observed"):
        check_bank(bare)
    c = check_bank(bare, world.data, ppc_draws=20, loo_draws=60)  # explicit data works
    assert c.n_draws_ppc == 20 and c.n_draws_loo == 60
    few = check_bank(bare, world.data, ppc_draws=10, loo_draws=10)
    assert few.n_draws_loo == 0 and np.isnan(few.elpd_items) and few.items_bad_k == []
    assert any("PSIS-LOO skipped" in n for n in few.notes)
    json.dumps(few.to_dict(), allow_nan=False)
    no_theta = ItemBank.from_draws(world.bank.a.values, world.bank.b.values,
                                   items=list(world.bank.items), source="t")  # fmt: skip
    with pytest.raises(BankError, match="no calibration abilities"):
        check_bank(no_theta, world.data)


# -------------------------------------------------------------------- new models
def test_control_new_models_keep(world, bank_check):
    new = check_new_models(world.bank, world.answers(world.rng.normal(size=5)), seed=0)
    assert new.n_at_ceiling == 0
    assert (new.table["p_above_info"] < 0.9).all()
    advice = advise(bank_check, new)
    assert advice.decision == "keep", str(advice)
    d = json.loads(json.dumps(advice.to_dict(), allow_nan=False))
    json.dumps(new.to_dict(), allow_nan=False)
    for key in ("decision", "reasons", "max_rhat", "divergences", "n_items_bad_pareto_k",
                "n_new_models_at_ceiling", "new_models"):  # fmt: skip
        assert key in d
    assert set(d["new_models"][0]) >= {"subject", "theta_mean", "theta_sd", "at_ceiling",
                                       "ppc_p"}  # fmt: skip
    assert d["n_new_models_at_ceiling"] == 0 and len(d["new_models"]) == 5


def test_saturated_new_models_refit(world, bank_check):
    theta = np.linspace(3.0, 4.0, 4)  # 3-4 SD above the calibration mean
    new = check_new_models(world.bank, world.answers(theta, prefix="top"), seed=0)
    t = new.table
    assert t["at_ceiling"].all(), str(new)
    assert (t["p_above_info"] > 0.9).all() and (t["hard_accuracy"] > 0.7).all()
    # the posteriors widen at the top: far less information than at the calibration
    assert (t["info_ratio"] < 0.5).all() and (t["sd_ratio"] > 2).all()
    advice = advise(bank_check, new)
    assert advice.decision == "refit"
    assert advice.n_new_models_at_ceiling == 4
    assert "at the ceiling" in advice.reasons[0] and "top0" in advice.reasons[0]
    assert json.loads(json.dumps(advice.to_dict()))["decision"] == "refit"
    assert "REFIT" in str(advice)


def test_false_alarm_rate_and_power():
    """Repeated control worlds: refit rate (false alarms) and saturation power."""
    false_alarms = hits = 0
    n = 50
    for seed in range(n):
        w = make_world(100 + seed, n_items=200, n_calib=30, draws=50)
        ctrl = check_new_models(w.bank, w.answers(w.rng.normal(size=5)), draws=60, seed=seed)
        false_alarms += advise(None, ctrl).decision == "refit"
        if seed < 10:
            top = w.answers(w.rng.uniform(3, 4, size=2), prefix="top")
            hits += advise(None, check_new_models(w.bank, top, draws=60)).decision == "refit"
    print(f"false-alarm rate {false_alarms}/{n}, saturation detected {hits}/10")
    assert false_alarms / n <= 0.10
    assert hits == 10


def test_new_models_reports_extra_items_and_missing(world):
    data = world.answers(world.rng.normal(size=2))
    y = np.hstack([np.array(data.values), np.ones((2, 3))])
    y[0, :50] = np.nan
    ext = from_array(y, subjects=data.subjects, items=[*data.items, "x1", "x2", "x3"],
                     source="ext.csv")  # fmt: skip
    new = check_new_models(world.bank, ext)
    assert new.extra_items == ("x1", "x2", "x3")
    assert new.table.loc["new0", "n_answered"] == 250
    assert "3 item(s) not in the bank" in str(new)
    assert any("not in the bank" in n for n in advise(None, new).notes)


def test_new_data_without_bank_items_is_an_error(world):
    other = world.answers([0.0, 1.0], items=[f"z{j}" for j in range(300)])
    with pytest.raises(DataError, match=r"new\.csv: none of its 300 items is in the bank"):
        check_new_models(world.bank, other)


def test_calibration_subjects_in_new_data(world):
    mixed = from_array(
        world.data.values[:3], subjects=["old000", "old001", "fresh"],
        items=world.data.items, source="mixed.csv",
    )  # fmt: skip
    with pytest.raises(DataError, match="mixed.csv: 2 subject.*calibration.*old000, old001"):
        check_new_models(world.bank, mixed)
    new = check_new_models(world.bank, mixed, calibration_subjects="skip")
    assert list(new.table.index) == ["fresh"]
    assert new.skipped_subjects == ("old000", "old001")
    assert any("already in the bank" in n for n in advise(None, new).notes)
    only_old = world.data.select(subjects=["old000"])
    with pytest.raises(DataError, match="every subject is a calibration subject"):
        check_new_models(world.bank, only_old, calibration_subjects="skip")


# ------------------------------------------------------------------------- advice
def test_thresholds_override_and_convergence_trigger(world, bank_check):
    theta = np.array([3.5, 3.8])
    new = check_new_models(world.bank, world.answers(theta, prefix="top"), seed=1)
    strict = RefitThresholds(hard_accuracy=1.01)  # nobody can be at the ceiling ...
    advice = advise(bank_check, new, thresholds=strict)
    assert advice.decision == "refit" and "above every calibration subject" in advice.reasons[0]
    off = RefitThresholds(hard_accuracy=1.01, beyond_share=None)  # ... nor beyond counted
    advice = advise(bank_check, new, thresholds=off)
    assert advice.decision == "keep" and advice.n_new_models_beyond == 2
    assert any("beyond_share is off" in n for n in advice.notes)
    ctrl = check_new_models(world.bank, world.answers([0.0, 0.2]), seed=1)
    bad = ConvergenceReport(1.08, 40.0, 60.0, 7, 0.5, (), sampler="nutpie")
    advice = advise(dataclasses.replace(bank_check, convergence=bad), ctrl)
    assert advice.decision == "refit"
    assert advice.max_rhat == pytest.approx(1.08) and advice.divergences == 7
    assert "not converged" in advice.reasons[0]
    good = ConvergenceReport(1.004, 900.0, 900.0, 0, 0.8, (), sampler="nutpie")
    assert advise(dataclasses.replace(bank_check, convergence=good), ctrl).decision == "keep"


def test_beyond_the_calibrated_range_trigger(world):
    """Refit when enough new models sit above every calibration subject, not for one."""
    cal_max = float(world.bank.subjects["theta_mean"].max())
    new = check_new_models(world.bank, world.answers([0.0, 0.5, -0.5, 0.2]), seed=3)
    t = new.table.copy()
    assert (t["p_above_calibration"] < 0.5).all() and not t["at_ceiling"].any()
    t["p_above_calibration"] = [0.95, 0.3, 0.99, 0.1]  # 2 of 4 beyond at P >= 0.9
    two = dataclasses.replace(new, table=t)
    advice = advise(None, two)
    assert advice.decision == "refit" and advice.n_new_models_beyond == 2
    assert f"ability, {cal_max:+.2f}" in advice.reasons[0] and "new0" in advice.reasons[0]
    assert "new1" not in advice.reasons[0]
    # half of 4 is 2; with 3 needed (share 0.75) or one beyond only, it is a keep
    assert advise(None, two, thresholds=RefitThresholds(beyond_share=0.75)).decision == "keep"
    t1 = t.assign(p_above_calibration=[0.95, 0.3, 0.6, 0.1])
    one = advise(None, dataclasses.replace(new, table=t1))
    assert one.decision == "keep" and one.n_new_models_beyond == 1
    assert any("1 of 4 new model(s) above every" in r for r in one.reasons)
    assert any("probably (P > 0.5)" in n and "new2" in n for n in one.notes)
    # P exactly at the threshold counts; the threshold is overridable
    strict = RefitThresholds(beyond_prob=0.99)
    assert advise(None, two, thresholds=strict).n_new_models_beyond == 1


def test_misfit_trigger_is_opt_in(world):
    new = check_new_models(world.bank, world.answers([0.0, 0.5, -0.5]), seed=2)
    t = new.table.copy()
    t["ppc_p"] = [0.001, 0.002, 0.5]  # two misfitting models
    fake = dataclasses.replace(new, table=t)
    assert advise(None, fake).decision == "keep"
    assert advise(None, fake).n_new_models_misfit == 2
    assert advise(None, fake, thresholds=RefitThresholds(misfit_share=0.5)).decision == "refit"


def test_new_model_ppc_is_calibrated(world):
    """Under the true model the person-fit p-values are roughly uniform, not extreme."""
    new = check_new_models(world.bank, world.answers(world.rng.normal(size=20)), seed=3)
    p = new.table["ppc_p"]
    assert (p < 0.01).sum() <= 1 and 0.25 < p.mean() < 0.75
    assert isinstance(new, NewModelsCheck) and new.n_draws == 200


def test_plots(bank_check, world):
    figs = [plot_bank_check(bank_check), plot_khat(bank_check),
            plot_new_models(check_new_models(world.bank, world.answers([0.0, 3.5])))]  # fmt: skip
    for fig in figs:
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    assert isinstance(bank_check.items, pd.DataFrame)


def test_item_rest_correlation_matches_numpy(rng):
    from fluid_bayes.upkeep.checking import _item_rest

    y = (rng.random((30, 12)) < 0.5).astype(float)
    mask = rng.random((30, 12)) < 0.8
    y0 = np.where(mask, y, 0.0)
    r = _item_rest(y0, mask)
    rest = y0.sum(axis=1)[:, None] - y0
    for j in range(12):
        k = mask[:, j]
        assert r[j] == pytest.approx(np.corrcoef(y0[k, j], rest[k, j])[0, 1])


def test_cli_diagnose_json_on_the_shipped_heldout_bank(tmp_path, capsys):
    """The four held-out ChemBench models are from the calibration population: keep."""
    import json

    from fluid_bayes import read_responses
    from fluid_bayes.cli.demo import DATA, HELD_OUT, MODELS
    from fluid_bayes.cli.main import main

    data = read_responses(DATA / "chembench" / "responses.csv")
    new = tmp_path / "new.csv"
    data.select(subjects=list(HELD_OUT)).to_frame().to_csv(new)
    assert main(["diagnose", str(MODELS / "chembench-heldout.nc"), "--new", str(new),
                 "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    for key in ("decision", "reasons", "max_rhat", "divergences", "n_items_bad_pareto_k",
                "n_new_models_at_ceiling", "new_models"):  # fmt: skip
        assert key in out
    assert out["decision"] == "keep" and out["n_new_models_at_ceiling"] == 0
    assert [m["subject"] for m in out["new_models"]] == list(HELD_OUT)
    assert {"subject", "theta_mean", "theta_sd", "at_ceiling", "ppc_p"} <= set(out["new_models"][0])
    # calibration subjects given as new are refused, naming them
    calib = next(s for s in data.subjects if s not in HELD_OUT)
    again = tmp_path / "again.csv"
    data.select(subjects=[calib]).to_frame().to_csv(again)
    assert main(["diagnose", str(MODELS / "chembench-heldout.nc"), "--new", str(again)]) == 2
    assert calib in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("model,x1,x2\nm,0,1\n")
    assert main(["diagnose", str(MODELS / "chembench-heldout.nc"), "--new", str(bad)]) == 2
    assert "bad.csv" in capsys.readouterr().err
